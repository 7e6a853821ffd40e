"""Which backend trains (Unsloth on CUDA, PEFT + TRL elsewhere), at which precision, and what each can honour."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.recipe import LoraConfig, Recipe

# Unsloth swaps a 16-bit base for its pre-quantized copy ("unsloth/<Name>-bnb-4bit" or
# "-unsloth-bnb-4bit") and records that name as the adapter's base.
_PREQUANT = re.compile(r"[-_](unsloth[-_])?bnb[-_]4bit$", re.IGNORECASE)


@dataclass
class Platform:
    """What this machine can do, and what the run will therefore use."""

    cuda: bool
    backend: str  # unsloth | peft
    precision: str  # bf16 | fp16 | fp32
    quantize: bool
    gradient_checkpointing: bool
    optimizer: str
    threads: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.precision]


def detect(recipe: Recipe) -> Platform:
    """Choose backend, precision, quantisation and optimiser for this machine; say why when falling back."""
    import torch

    t, q = recipe.train, recipe.quant
    cuda = torch.cuda.is_available()
    notes: list[str] = []
    backend = "peft"
    from workbench.train.ranks import current_world

    if t.backend == "auto" and cuda and current_world().size > 1:
        notes.append("several processes: training with PEFT + TRL (train.backend=unsloth to try Unsloth under DDP)")
    elif t.backend in ("auto", "unsloth") and cuda:
        if _unsloth_available():
            backend = "unsloth"
        elif t.backend == "unsloth":
            raise WorkbenchError("train.backend=unsloth but unsloth cannot be imported", 'pip install -e ".[gpu]", or set train.backend=auto')
        else:
            notes.append("unsloth is not installed: training with PEFT + TRL")
    elif t.backend == "unsloth":
        raise WorkbenchError("train.backend=unsloth needs a CUDA GPU", "set train.backend=auto to use PEFT + TRL here")
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    precision = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}.get(t.precision) or ("bf16" if bf16_ok else "fp16" if cuda else "fp32")
    quantize = q.load_in_4bit
    if quantize and backend == "peft" and not _bnb_4bit_available(cuda):
        quantize = False
        notes.append(f"4-bit NF4 (bitsandbytes) is not available on this platform: training {precision} LoRA instead of QLoRA")
    optimizer = t.optimizer
    if optimizer == "paged_adamw_8bit" and not cuda:
        optimizer = "adamw_8bit"
        notes.append("paged optimisers need CUDA: using adamw_8bit")
    if optimizer == "adamw_8bit" and not _bnb_available():
        optimizer = "adamw_torch"
        notes.append("bitsandbytes is not installed: using adamw_torch instead of adamw_8bit")
    gc = t.gradient_checkpointing if t.gradient_checkpointing is not None else cuda
    threads = t.threads if t.threads is not None else (None if cuda else 1)
    return Platform(cuda, backend, precision, quantize, gc, optimizer, threads, notes)


def _unsloth_available() -> bool:
    """Import unsloth (it patches transformers and TRL, so only ever in the training process, with CUDA)."""
    try:
        import unsloth  # noqa: F401
    except (ImportError, NotImplementedError, RuntimeError):
        return False
    return True


def _bnb_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # bitsandbytes raises assorted errors on unsupported platforms
        return False
    return True


def _bnb_4bit_available(cuda: bool) -> bool:
    """Can bitsandbytes quantise to NF4 here? (CUDA, and CPU with bitsandbytes >= 0.45's CPU backend.)"""
    if not _bnb_available():
        return False
    try:
        import torch
        from bitsandbytes.functional import dequantize_4bit, quantize_4bit

        w = torch.randn(64, 64, device="cuda" if cuda else "cpu")
        q, state = quantize_4bit(w, quant_type="nf4", compress_statistics=True)
        return bool(dequantize_4bit(q, state).shape == w.shape)
    except Exception:
        return False




# --- Unsloth ------------------------------------------------------------------------------------


def import_unsloth_first(recipe: Recipe, *, cuda: bool | None = None) -> bool:
    """Import unsloth before anything imports transformers, TRL or PEFT (it patches them at import).

    Only when this run would use it (train.backend auto/unsloth, and CUDA); returns whether it is
    loaded. Unsloth imported after transformers trains unpatched (slower, more memory).
    """
    if recipe.train.backend == "peft":
        return False
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        return False
    return _unsloth_available()


def is_prequantized(name: str) -> bool:
    """A repo or folder that holds 4-bit bitsandbytes weights (an Unsloth `-bnb-4bit` upload, or a config saying so)."""
    if _PREQUANT.search(name.rstrip("/")):
        return True
    cfg = Path(name).expanduser() / "config.json"
    if cfg.is_file():
        try:
            q = json.loads(cfg.read_text(encoding="utf-8")).get("quantization_config") or {}
        except ValueError:
            return False
        return bool(q.get("load_in_4bit")) or q.get("quant_method") == "bitsandbytes" and not q.get("load_in_8bit")
    return False


def base_name(name: str) -> str:
    """A model name as Unsloth's renames leave it comparable: last path part, lower case, `-bnb-4bit` dropped."""
    last = Path(name.rstrip("/")).name or name
    return _PREQUANT.sub("", last).lower()


def same_base(a: str, b: str) -> bool:
    """Whether two model names name the same weights up to Unsloth's 4-bit rename (`Org/X` vs `unsloth/X-bnb-4bit`)."""
    return a == b or base_name(a) == base_name(b)


def check_quantization(recipe: Recipe) -> None:
    """A pre-quantized 4-bit repo cannot be trained as a 16-bit LoRA: refuse it with load_in_4bit false."""
    name = recipe.model.name
    if not recipe.quant.load_in_4bit and is_prequantized(name):
        sixteen = _PREQUANT.sub("", name.rstrip("/"))
        raise WorkbenchError(
            f"model.name {name} holds pre-quantized 4-bit weights, but quant.load_in_4bit is false",
            f"set quant.load_in_4bit: true (QLoRA), or name the 16-bit model (e.g. {sixteen}) for 16-bit LoRA",
        )


def unsloth_peft_kwargs(lc: LoraConfig, peft_cfg: Any) -> tuple[dict[str, Any], list[str]]:
    """FastLanguageModel.get_peft_model arguments carrying every LoRA option of the recipe (from the PEFT
    config the PEFT path would use, so both paths validate alike), and notes on what runs slower there."""
    init = peft_cfg.init_lora_weights
    kwargs: dict[str, Any] = {
        "r": peft_cfg.r, "target_modules": sorted(peft_cfg.target_modules or []), "lora_alpha": peft_cfg.lora_alpha,
        "lora_dropout": peft_cfg.lora_dropout, "bias": "none", "use_rslora": peft_cfg.use_rslora, "init_lora_weights": init,
    }  # fmt: skip
    if peft_cfg.target_parameters:
        kwargs["target_parameters"] = list(peft_cfg.target_parameters)
    if peft_cfg.modules_to_save:
        kwargs["modules_to_save"] = list(peft_cfg.modules_to_save)
    if peft_cfg.loftq_config:
        kwargs["loftq_config"] = peft_cfg.loftq_config
    notes: list[str] = []
    if lc.use_dora:
        kwargs["use_dora"] = True
        notes.append("DoRA on Unsloth: its fused LoRA kernels do not apply the magnitude vector, so DoRA layers run on PEFT's slower path")
    return kwargs, notes
