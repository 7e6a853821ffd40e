"""The training stage: LoRA/QLoRA on exactly the labels workbench.template.mask verified (Unsloth on CUDA, PEFT + TRL elsewhere)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.records import Conversation
from workbench.recipe import ModelConfig, Recipe
from workbench.train.data import Prepared, as_dataset, end_of_turn_id, prepare
from workbench.train.log import ProgressFn, TrainEvent

__all__ = ["Platform", "Prepared", "TrainResult", "detect", "load_model", "prepare", "train"]


@dataclass
class TrainResult:
    """What a run produced: where, how it went, and the per-step log."""

    run_dir: Path
    adapter_dir: Path
    backend: str
    steps: int
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    stopped_early: bool
    trainable_params: int
    total_params: int
    tokens_per_s: float | None  # median over logged steps
    examples: int
    log: list[dict[str, Any]]
    train_seconds: float = 0.0  # wall time of the training loop, summed over every resumed session
    tokens: int = 0  # tokens the trainer consumed (TRL's num_tokens), summed over every resumed session
    notes: list[str] = field(default_factory=list)
    merged_dir: Path | None = None


# --- model and data ---------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")


def model_path(spec: ModelConfig, *, on_progress: Callable[[dict[str, Any]], None] | None = None) -> str:
    """A loadable model: `tiny:<family>` is built and `tiny-pretrained:<family>` built and pretrained on the
    shipped corpus (once per option set, cached); local folders become absolute."""
    if spec.name.startswith("tiny-pretrained:"):
        from workbench.train import pretrain

        return pretrain.resolve(spec.name, model=spec.tiny or None, on_progress=on_progress)
    if spec.name.startswith("tiny:"):
        from workbench.train import tiny

        family = spec.name.split(":", 1)[1] or "chatml"
        dest = cache_dir() / "tiny" / f"{family}-{tiny.options_hash(family, True, spec.tiny)[:10]}"
        return str(tiny.build(dest, family, model=True, **spec.tiny))
    p = Path(spec.name).expanduser()
    return str(p.resolve()) if p.exists() else spec.name


# --- platform and backend ---------------------------------------------------------------------


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
    if t.backend in ("auto", "unsloth") and cuda:
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


def load_model(recipe: Recipe, path: str, plat: Platform) -> tuple[Any, Any]:
    """The base model with LoRA attached (PEFT or Unsloth) and the resolved targets."""
    import torch

    from workbench.train import lora

    q, lc = recipe.quant, recipe.lora
    compute = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(q.compute_dtype, plat.dtype)
    if plat.backend == "unsloth":
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(
            model_name=path, max_seq_length=recipe.model.max_length, dtype=None, load_in_4bit=plat.quantize
        )
        targets = lora.resolve(model, lc.target_modules, experts=lc.experts)
        model = FastLanguageModel.get_peft_model(
            model, r=lc.r, target_modules=targets.modules, lora_alpha=lc.alpha, lora_dropout=lc.dropout, bias="none",
            use_gradient_checkpointing="unsloth" if plat.gradient_checkpointing else False,
            random_state=recipe.train.seed, use_rslora=lc.use_rslora,
        )
        return model, targets
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": plat.dtype if recipe.model.dtype == "auto" else getattr(torch, recipe.model.dtype)}
    if recipe.model.attn_implementation:
        kwargs["attn_implementation"] = recipe.model.attn_implementation
    if plat.quantize:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=q.bnb_4bit_quant_type, bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=compute if q.compute_dtype != "auto" else plat.dtype,
        )
        kwargs["device_map"] = {"": 0 if plat.cuda else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise WorkbenchError(f"cannot load model {path}: {str(e).splitlines()[0]}", "model.name: a local folder, a hub name (online) or tiny:<family>") from None
    if plat.quantize and not plat.cuda:
        # bitsandbytes repacks 4-bit weights for fast CPU inference on the first eval-mode forward and never
        # unpacks them, after which backward runs through a kernel without autograd: keep the trainable layout.
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    if plat.quantize:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plat.gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    targets = lora.resolve(model, lc.target_modules, experts=lc.experts)
    torch.manual_seed(recipe.train.seed)
    return get_peft_model(model, lora.peft_config(lc, targets, quantized=plat.quantize)), targets


def sft_config(recipe: Recipe, plat: Platform, out: Path, *, has_eval: bool) -> Any:
    """TRL's SFTConfig from the recipe and the platform (CPU: no bf16, no checkpointing, use_cpu)."""
    from trl import SFTConfig

    t = recipe.train
    evaluating = has_eval and t.eval_every is not None
    early = evaluating and t.early_stopping_patience is not None
    save_every = t.save_every
    if early and (save_every is None or save_every % t.eval_every):  # type: ignore[operator]
        save_every = t.eval_every  # the best checkpoint must be one that was evaluated
    return SFTConfig(
        output_dir=str(out),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a fraction of the steps
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        optim=plat.optimizer,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_length=recipe.model.max_length,
        packing=t.packing,
        packing_strategy="bfd",  # padding-free: position ids restart per example, so examples never attend to each other
        activation_checkpointing=plat.gradient_checkpointing and plat.backend != "unsloth",
        activation_checkpointing_kwargs={"use_reentrant": False} if plat.gradient_checkpointing else None,
        bf16=plat.precision == "bf16",
        fp16=plat.precision == "fp16",
        use_cpu=not plat.cuda,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=t.eval_every if evaluating else None,
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 500,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        logging_steps=t.logging_every,
        seed=t.seed,
        data_seed=t.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def build_trainer(recipe: Recipe, model: Any, tokenizer: Any, data: Prepared, plat: Platform, out: Path, callbacks: list[Any]) -> Any:
    """An SFTTrainer over the pre-tokenised rows (TRL keeps their labels as they are)."""
    import datasets
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    args = sft_config(recipe, plat, out, has_eval=bool(data.eval))
    if args.load_best_model_at_end:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=recipe.train.early_stopping_patience)]
    optimizers: tuple[Any, Any] = (None, None)
    if recipe.lora.loraplus_lr_ratio:
        from workbench.train.lora import loraplus_optimizer

        opt = loraplus_optimizer(model, lr=recipe.train.learning_rate, ratio=recipe.lora.loraplus_lr_ratio, weight_decay=recipe.train.weight_decay, optim=plat.optimizer)
        optimizers = (opt, None)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # TRL's dataset passes are instant here; their bars would be noise
    try:
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=as_dataset(data.train),
            eval_dataset=as_dataset(data.eval) if data.eval else None,
            processing_class=tokenizer,
            callbacks=callbacks,
            optimizers=optimizers,
        )
    finally:
        if bars:
            datasets.enable_progress_bars()
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # progress is reported through on_progress, never printed here
        trainer.remove_callback(cb)
    return trainer


# --- the run ----------------------------------------------------------------------------------


def train(
    recipe: Recipe,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_progress: ProgressFn | None = None,
    prepared: Prepared | Sequence[Conversation] | None = None,
) -> TrainResult:
    """Train a LoRA/QLoRA adapter as the recipe says; write the run directory; return what happened.

    ``prepared``: rendered-and-masked data (a ``Prepared``), or conversations to render and mask
    (e.g. the output of dedup); without it the recipe's data is ingested and masked here.
    ``resume``: continue from the last checkpoint in ``<run_dir>/checkpoints``.
    """
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    from workbench.train import lora

    from workbench.train import log as trainlog
    from workbench.template.tokenizer import load_tokenizer

    emit = on_progress or (lambda e: None)
    out = Path(run_dir) if run_dir is not None else recipe.resolved_run_dir()
    ckpt_dir = out / "checkpoints"
    last_ckpt = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if resume and last_ckpt is None:
        raise WorkbenchError(f"no checkpoint to resume in {ckpt_dir}", "train.save_every=N writes checkpoints every N steps")
    plat = detect(recipe)
    prev_threads = torch.get_num_threads()
    if plat.threads:
        torch.set_num_threads(plat.threads)
    try:
        for note in plat.notes:
            emit(TrainEvent("message", message=note))
        path = model_path(recipe.model)
        tokenizer = load_tokenizer(path, template=recipe.model.template)
        if isinstance(prepared, Prepared):
            data = prepared
        else:
            data = prepare(recipe, tokenizer, list(prepared) if prepared is not None else None)
        if data.dropped:
            emit(TrainEvent("message", message="dropped before training: " + ", ".join(f"{k} {v}" for k, v in data.dropped.items())))
        out.mkdir(parents=True, exist_ok=True)
        digest = trainlog.data_hash(data.train)
        run_info_path = out / "run.json"
        if resume and run_info_path.is_file():
            before = json.loads(run_info_path.read_text()).get("data_hash")
            if before and before != digest:
                emit(TrainEvent("message", message="the training data changed since the checkpoint was written"))
        model, targets = load_model(recipe, path, plat)
        for note in targets.notes:
            emit(TrainEvent("message", message=note))
        n_train, n_total = lora.trainable(model)
        emit(TrainEvent("message", message=f"{plat.backend} backend, {plat.precision}{', 4-bit NF4 base' if plat.quantize else ''}; "
                        f"LoRA on {targets.describe()}; trainable parameters {n_train:,} of {n_total:,} ({100 * n_train / max(n_total, 1):.2f}%)"))
        (out / "recipe.yaml").write_text(f"# workbench train {out / 'recipe.yaml'}\n" + recipe.to_yaml(), encoding="utf-8")
        progress_cb = trainlog.make_callback(on_progress)
        trainer = build_trainer(recipe, model, tokenizer, data, plat, ckpt_dir, [progress_cb])
        run_metrics = trainer.train(resume_from_checkpoint=last_ckpt if resume else None).metrics
        if data.eval and recipe.train.eval_every is None:
            trainer.evaluate()
        stopped = any(getattr(cb, "early_stopping_patience_counter", 0) >= (recipe.train.early_stopping_patience or 10**9) for cb in trainer.callback_handler.callbacks)
        adapter_dir = out / "adapter"
        trainer.save_model(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        notes = list(plat.notes) + list(targets.notes)
        notes += trainlog.save_generation_config(trainer.model, tokenizer, adapter_dir, end_of_turn_id(tokenizer))
        log = trainlog.step_log(trainer.state.log_history)
        trainlog.write_json(out / "train_log.json", log)
        trainlog.plot_loss(log, out / "loss.png", title=f"{recipe.name or 'run'}: loss")
        trainlog.write_jsonl(out / "dropped.jsonl", data.dropped_rows)
        losses = [r["loss"] for r in log if "loss" in r]
        evals = [r["eval_loss"] for r in log if "eval_loss" in r]
        best = trainer.state.best_metric if trainer.args.load_best_model_at_end else None  # the checkpoint early stopping restored
        spent = trainlog.totals(log)
        speeds = sorted(r["tokens_per_s"] for r in log if r.get("tokens_per_s"))
        result = TrainResult(
            run_dir=out, adapter_dir=adapter_dir, backend=plat.backend, steps=trainer.state.global_step,
            first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
            eval_loss=best if best is not None else evals[-1] if evals else None, stopped_early=stopped, trainable_params=n_train,
            total_params=n_total, tokens_per_s=speeds[len(speeds) // 2] if speeds else None, examples=len(data.train), log=log,
            notes=notes, train_seconds=spent["seconds"] or float(run_metrics.get("train_runtime", 0.0)), tokens=spent["tokens"],
        )  # fmt: skip
        if recipe.merge.enabled:
            m = recipe.merge
            result.merged_dir = lora.merge([adapter_dir, *m.adapters], out / "merged", base=path, weights=m.weights or None,
                                           combination=m.combination, density=m.density, dtype=m.dtype)
        trainlog.write_json(run_info_path, {
            "recipe": recipe.name, "model": recipe.model.name, "model_path": path, "backend": plat.backend,
            "precision": plat.precision, "quantized": plat.quantize, "optimizer": plat.optimizer, "threads": plat.threads,
            "data_hash": digest, "template_hash": trainlog.text_hash(tokenizer.chat_template),
            "examples": {"train": len(data.train), "eval": len(data.eval), "rows_in": data.rows_in, "dropped": data.dropped},
            "targets": {"modules": targets.modules, "parameters": targets.parameters, "kind": targets.kind},
            "versions": trainlog.versions(),
            "duration_s": round(result.train_seconds, 1), "tokens": result.tokens, "segments": spent["segments"],
            "eval_loss_from": "best checkpoint (restored)" if best is not None else "last evaluation",
            "hardware": _hardware(plat),
            "result": {k: v for k, v in result.__dict__.items() if k not in ("log",)},
        })
        emit(TrainEvent("end", step=result.steps, max_steps=trainer.state.max_steps, loss=result.last_loss, eval_loss=result.eval_loss))
        return result
    finally:
        torch.set_num_threads(prev_threads)


def _hardware(plat: Platform) -> str:
    """One line for the report: the accelerator, or the CPU with the threads torch used."""
    import platform as pf

    import torch

    if plat.cuda:
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    cpu = pf.processor() or pf.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {plat.threads or torch.get_num_threads()} torch thread(s)"
