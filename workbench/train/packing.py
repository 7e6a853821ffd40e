"""Whether packed examples stay apart in a model: restarting position ids isolates attention layers, nothing else.

TRL's padding-free packing puts several examples in one row and restarts ``position_ids`` at
each; transformers turns that into a block-diagonal attention mask. Layers that mix tokens
through a recurrent state or a causal convolution (Mamba / SSM mixers, Gated DeltaNet linear
attention, short convolutions) never read position ids: their state flows from one example into
the next. On such models packing is refused and training runs unpacked.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def recurrent_mixers(model: Any) -> dict[str, int]:
    """Token-mixing modules that carry state along the sequence, by class name, with how many of each.

    A module counts when it owns an SSM decay parameter (``A_log``: Mamba, Mamba-2, Gated DeltaNet)
    or holds a depthwise causal ``Conv1d`` over the sequence (a short convolution).
    """
    import torch

    mixers: dict[str, str] = {}
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if "A_log" in own:
            mixers[name] = type(module).__name__
            continue
        for child_name, child in module.named_children():
            if isinstance(child, torch.nn.Conv1d) and child.groups == child.in_channels and child.groups > 1:
                mixers.setdefault(name, type(module).__name__)
    # a mixer nested inside another counted mixer is the same layer
    names = sorted(mixers)
    top = [n for n in names if not any(n != m and n.startswith(m + ".") for m in names)]
    return dict(sorted(Counter(mixers[n] for n in top).items()))


def layer_count(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    n = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    return int(n) if isinstance(n, int) else None


def packing_refusal(model: Any) -> str | None:
    """Why packing would let examples see each other in this model (None: attention-only, packing is safe)."""
    found = recurrent_mixers(model)
    if not found:
        return None
    n = sum(found.values())
    layers = layer_count(model)
    of = f" of {layers}" if layers and layers >= n else ""
    kinds = ", ".join(f"{k} x{v}" for k, v in found.items())
    return (
        f"train.packing is off for this model: {n}{of} layers mix tokens through a recurrent state or convolution "
        f"({kinds}) that restarting position ids does not reset, so packed examples would leak into each other; "
        "training unpacked (each example padded in its batch)"
    )
