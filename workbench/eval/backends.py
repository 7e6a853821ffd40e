"""How an evaluated model is loaded for lm-eval: the HF or vLLM backend, CPU threads, batch size, a 4-bit base."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

BACKENDS = ("hf", "vllm")
CPU_BATCH = 32  # generation and loss batch on CPU: the demo's 200 items in 7 forward passes per token, not 200
AUTO_LOSS_BATCH = 8  # held-out loss rows per forward pass when lm-eval's batch is "auto" (full-length rows of a large model)
THINK_END = "</think>"
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's LoRA kernels are built for


def resolve_batch_size(batch_size: int | str | None, device: str) -> int | str:
    """None: lm-eval's "auto" (largest batch that fits) on CUDA, CPU_BATCH elsewhere (auto probes for OOM, which a CPU never raises)."""
    if batch_size is None:
        return "auto" if device.startswith("cuda") else CPU_BATCH
    if isinstance(batch_size, str) and batch_size.isdigit():
        return int(batch_size)
    if isinstance(batch_size, int) and batch_size < 1:
        raise WorkbenchError(f"eval batch size {batch_size} must be at least 1", 'a count, or "auto"')
    return batch_size


def resolve_threads(threads: int | None, device: str) -> int | None:
    """Training's rule: 1 thread on CPU unless told (a small model on a busy shared CPU is 10x slower with more), torch's default on CUDA."""
    if threads is not None:
        return threads
    return None if device.startswith("cuda") else 1


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block and restored after (None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def chat_kwargs(template_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """lm-eval model arguments that pass chat-template kwargs (e.g. enable_thinking) to every chat render.

    With ``enable_thinking`` on, the reasoning is cut at ``</think>`` before the filters read the answer.
    """
    kwargs = dict(template_kwargs or {})
    out: dict[str, Any] = {"chat_template_args": kwargs} if kwargs else {}
    if kwargs.get("enable_thinking"):
        out["think_end_token"] = THINK_END
    return out


def lora_rank(adapter: str | Path) -> int:
    """The adapter's rank (adapter_config.json ``r``, or the largest in ``rank_pattern``)."""
    try:
        cfg = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WorkbenchError(f"{adapter}: cannot read adapter_config.json: {e}") from None
    ranks = [int(cfg.get("r") or 8), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_args(model: str, adapter: str | Path | None, *, dtype: str, batch_size: int | str, seed: int, load_in_4bit: bool,
              tokenizer: str | None, add_bos_token: bool | None, template_kwargs: Mapping[str, Any] | None,
              max_gen_toks: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Arguments for lm-eval's ``VLLM`` model: the base once, the adapter served as a LoRA request (``enable_lora``).

    vLLM applies the adapter per request on the unmerged base, so base and base+adapter share the same
    weights and kernels; a 4-bit base is vLLM's in-flight bitsandbytes quantization.
    """
    args: dict[str, Any] = {"pretrained": model, "dtype": dtype, "batch_size": batch_size, "seed": seed}
    if tokenizer:
        args["tokenizer"] = tokenizer
    if add_bos_token is not None:
        args["add_bos_token"] = add_bos_token
    if load_in_4bit:
        args["quantization"] = "bitsandbytes"
    if max_gen_toks:
        args["max_gen_toks"] = max_gen_toks
    if adapter is not None:
        rank = lora_rank(adapter)
        fit = next((r for r in VLLM_LORA_RANKS if r >= rank), None)
        if fit is None:
            raise WorkbenchError(f"adapter rank {rank} is above vLLM's largest LoRA rank ({VLLM_LORA_RANKS[-1]})", "evaluate with eval.backend: hf")
        args.update(lora_local_path=str(Path(adapter).resolve()), enable_lora=True, max_lora_rank=fit)
    tk = dict(template_kwargs or {})
    thinking = tk.pop("enable_thinking", None)  # lm-eval's VLLM reads this one as its own argument
    if thinking is not None:
        args["enable_thinking"] = bool(thinking)
        if thinking:
            args["think_end_token"] = THINK_END
    if tk:
        args["chat_template_args"] = tk
    return args


def vllm_lm(args: dict[str, Any]) -> Any:
    """lm-eval's VLLM model from ``vllm_args``; needs CUDA and the vllm package."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise WorkbenchError("eval.backend=vllm needs a CUDA GPU", "use eval.backend: hf here")
    if importlib.util.find_spec("vllm") is None:
        raise WorkbenchError("eval.backend=vllm but vllm is not installed", 'pip install "lm-eval[vllm]", or use eval.backend: hf')
    from lm_eval.models.vllm_causallms import VLLM

    return VLLM(**args)


def bnb_config(load_in_4bit: bool, *, quant_type: str = "nf4", double_quant: bool = True, device: str = "cpu") -> Any:
    """The BitsAndBytesConfig training's QLoRA uses (NF4, double quantization, compute in bf16 on a GPU that has it, fp32 on CPU)."""
    if not load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    cuda = device.startswith("cuda")
    compute = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16 if cuda else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=compute)  # fmt: skip


def hf_lm(model: str, adapter: str | Path | None, *, device: str, dtype: str, batch_size: int | str, tokenizer: str | None,
          add_bos_token: bool | None, template_kwargs: Mapping[str, Any] | None, load_in_4bit: bool = False,
          quant_type: str = "nf4", double_quant: bool = True) -> Any:  # fmt: skip
    """lm-eval's HFLM on ``model`` (+ ``adapter`` through PEFT); a 4-bit base is loaded here with training's
    quantization config and handed to lm-eval as a model object (lm-eval takes no quantization config of its own)."""
    from lm_eval.models.huggingface import HFLM

    extra = chat_kwargs(template_kwargs)
    try:
        if not load_in_4bit:
            return HFLM(pretrained=model, peft=str(adapter) if adapter else None, tokenizer=tokenizer, device=device,
                        dtype=dtype, batch_size=batch_size, add_bos_token=add_bos_token, **extra)  # fmt: skip
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        qc = bnb_config(True, quant_type=quant_type, double_quant=double_quant, device=device)
        base = AutoModelForCausalLM.from_pretrained(model, quantization_config=qc, dtype=qc.bnb_4bit_compute_dtype if dtype == "auto" else getattr(torch, dtype),
                                                    device_map={"": device})  # fmt: skip
        if adapter:
            from peft import PeftModel

            base = PeftModel.from_pretrained(base, str(adapter))
        base.eval()
        tok = AutoTokenizer.from_pretrained(tokenizer or model)
        return HFLM(pretrained=base, tokenizer=tok, batch_size=batch_size, add_bos_token=add_bos_token, **extra)
    except OSError as e:
        raise WorkbenchError(f"cannot load {model}: {str(e).splitlines()[0]}", "offline: give a local folder or a cached hub name") from None


@contextlib.contextmanager
def offline(enabled: bool = True) -> Iterator[None]:
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE on unless the caller set them; restored afterwards."""
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    before = {k: os.environ.get(k) for k in keys}
    if enabled:
        for k in keys:
            os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def versions_of(packages: Sequence[str]) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
