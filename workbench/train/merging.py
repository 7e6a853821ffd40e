"""Merging adapters into a 16-bit base: one adapter as trained, several combined on their weight deltas.

For adapters i with weights w_i and deltas D_i = scaling_i * B_i @ A_i (what each adds to a layer's weight):

- ``linear`` (and ``cat``): W + sum_i w_i D_i exactly, through PEFT's ``cat`` combination (the adapters'
  factors stacked to rank sum r_i). PEFT's own ``linear`` adds the A and B factors separately, so its
  product carries cross terms B_i A_j and is not the weighted sum of the deltas.
- ``ties``, ``dare_ties``, ``dare_linear``, ``magnitude_prune``: PEFT's merge_utils functions applied to
  the full deltas D_i of every adapted layer (trim/elect/disjoint-merge as the TIES and DARE papers
  describe task vectors), and the result added to the base weight.
- ``svd``: PEFT's ``svd``: the delta sum truncated to the largest rank (an approximation).

A ``mergekit.yaml`` beside the merged model states the same merge for mergekit, for users who merge
full models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

COMBINATIONS = ("linear", "ties", "dare_ties", "dare_linear", "magnitude_prune", "cat", "svd")
ON_DELTAS = ("ties", "dare_ties", "dare_linear", "magnitude_prune")
# our combination -> mergekit's merge_method with the same meaning on task vectors (model - base)
MERGEKIT = {"linear": "task_arithmetic", "cat": "task_arithmetic", "svd": "task_arithmetic", "ties": "ties",
            "dare_ties": "dare_ties", "dare_linear": "dare_linear", "magnitude_prune": "task_arithmetic"}  # fmt: skip


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter was trained on, from its adapter_config.json."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise WorkbenchError(f"{adapter}: no adapter_config.json here", "point at a run's adapter/ folder")
    try:
        base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except ValueError as e:
        raise WorkbenchError(f"{cfg}: not valid JSON: {e}") from None
    if not base:
        raise WorkbenchError(f"{cfg} names no base model", "pass --base")
    return str(base)


def resolve_base(adapters: Sequence[str | Path], base: str | None) -> str:
    """The 16-bit base to merge into: --base, else the adapters' recorded base; all must agree.

    Unsloth records its pre-quantized copy (`unsloth/X-bnb-4bit`) as the base: that names the same
    model, but merging into 4-bit weights is not a 16-bit merge, so such a base needs --base.
    """
    from workbench.train.backend import is_prequantized, same_base

    recorded = [adapter_base(a) for a in adapters]
    for a, r in zip(adapters[1:], recorded[1:]):
        if not same_base(r, recorded[0]):
            raise WorkbenchError(f"adapters were trained on different bases: {adapters[0]} on {recorded[0]}, {a} on {r}",
                                 "merge adapters of one base model")  # fmt: skip
    if base is not None:
        if not same_base(base, recorded[0]) and not (Path(base).is_dir() and Path(recorded[0]).is_dir()):
            raise WorkbenchError(f"--base {base} is not the base the adapters were trained on ({recorded[0]})",
                                 "pass the model the adapters were trained on")  # fmt: skip
        return base
    if is_prequantized(recorded[0]):
        from workbench.train.backend import base_name

        raise WorkbenchError(
            f"the adapters' recorded base {recorded[0]} holds pre-quantized 4-bit weights (Unsloth's copy of the base)",
            f"pass --base with the 16-bit model it was made from (e.g. a folder or hub name ending in {base_name(recorded[0])})",
        )
    return recorded[0]


def merge(
    adapters: Sequence[str | Path],
    out: str | Path,
    *,
    base: str | None = None,
    weights: Sequence[float] | None = None,
    combination: str = "linear",
    density: float | None = None,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> Path:
    """Merge one adapter (or several, combined as the module docstring says) into a 16-bit base; save it.

    The tokenizer, the adapter's generation_config (with the end-of-turn stop token) and a
    mergekit.yaml go with it. ``seed`` fixes DARE's random drop.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from workbench.outputs import atomic_path

    if not adapters:
        raise WorkbenchError("merge needs at least one adapter")
    if combination not in COMBINATIONS:
        raise WorkbenchError(f"unknown combination {combination!r}", "one of " + ", ".join(COMBINATIONS))
    if weights and len(weights) != len(adapters):
        raise WorkbenchError(f"{len(weights)} weights for {len(adapters)} adapters", "give one weight per adapter")
    if density is None and combination in ON_DELTAS:
        density = 0.5
    if density is not None and not 0.0 < density <= 1.0:
        raise WorkbenchError(f"--density {density} is not in (0, 1]", "the fraction of each delta's entries kept")
    base = resolve_base(adapters, base)
    ws = list(weights or [1.0 / len(adapters)] * len(adapters))
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    except OSError as e:
        raise WorkbenchError(f"cannot load base model {base}: {str(e).splitlines()[0]}", "pass --base DIR") from None
    names = [f"a{i}" for i in range(len(adapters))]
    peft_model = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapters[1:]):
        peft_model.load_adapter(str(path), adapter_name=name)
    if len(adapters) == 1:
        merged = peft_model.merge_and_unload()
    elif combination in ON_DELTAS:
        torch.manual_seed(seed)
        merged = _merge_on_deltas(peft_model, names, ws, combination, float(density or 0.5))
    else:
        kind = "svd" if combination == "svd" else "cat"
        peft_model.add_weighted_adapter(names, ws, "merged", combination_type=kind)
        peft_model.set_adapter("merged")
        for name in names:
            peft_model.delete_adapter(name)
        merged = peft_model.merge_and_unload()
    first = Path(adapters[0])
    if (first / "generation_config.json").is_file():
        merged.generation_config = GenerationConfig.from_pretrained(first)
    with atomic_path(out) as tmp:
        merged.save_pretrained(tmp)
        tok_src = first if (first / "tokenizer_config.json").is_file() else Path(base)
        try:
            AutoTokenizer.from_pretrained(tok_src).save_pretrained(tmp)
        except (OSError, ValueError):
            pass  # a merged model without a tokenizer is still a model; the base's tokenizer applies
        (tmp / "mergekit.yaml").write_text(mergekit_yaml(base, adapters, ws, combination, density, dtype), encoding="utf-8")
    return Path(out)


def _merge_on_deltas(peft_model: Any, names: list[str], weights: list[float], combination: str, density: float) -> Any:
    """Add TIES/DARE/magnitude-pruned combinations of each layer's full adapter deltas to its base weight."""
    import torch
    from peft.tuners.lora import LoraLayer
    from peft.utils import merge_utils

    fn = getattr(merge_utils, combination)
    w = torch.tensor(weights)
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            present = [n for n in names if n in module.lora_A]
            if not present:
                continue
            if any(module.use_dora.get(n) for n in present):
                raise WorkbenchError(f"{name}: DoRA adapters have no plain weight delta for {combination}",
                                     "merge DoRA adapters one at a time, or with --combination linear")  # fmt: skip
            base = module.get_base_layer().weight
            deltas = [module.get_delta_weight(n).float() for n in present]
            kw = {"density": density} if combination != "task_arithmetic" else {}
            combined = fn(deltas, w[[names.index(n) for n in present]], **kw)
            base.data += combined.to(base.dtype)
    return peft_model.unload()


def mergekit_yaml(base: str, adapters: Sequence[str | Path], weights: Sequence[float], combination: str, density: float | None, dtype: str) -> str:
    """The same merge as a mergekit config (`base+adapter` applies each LoRA to the base)."""
    import yaml

    method = MERGEKIT[combination]
    models = []
    for a, w in zip(adapters, weights):
        params: dict[str, Any] = {"weight": float(w)}
        if density is not None and combination in ON_DELTAS and method != "task_arithmetic":
            params["density"] = float(density)
        models.append({"model": f"{base}+{Path(a).resolve()}", "parameters": params})
    cfg = {"merge_method": method, "base_model": base, "models": models, "parameters": {"normalize": False}, "dtype": dtype}
    note = (
        f"# mergekit config for the same merge on full models: mergekit-yaml mergekit.yaml OUT\n"
        f"# workbench merged with `{combination}` on LoRA deltas; mergekit's {method} works on (model - base)"
        + (", with its own normalisation details" if method != "task_arithmetic" else "")
        + (" (magnitude pruning has no mergekit method: task_arithmetic without pruning)" if combination == "magnitude_prune" else "")
        + ".\n"
    )
    return note + yaml.safe_dump(cfg, sort_keys=False)
