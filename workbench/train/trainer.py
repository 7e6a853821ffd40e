"""The training stage: LoRA/QLoRA on exactly the labels workbench.template.mask verified (Unsloth on CUDA, PEFT + TRL elsewhere)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.errors import WorkbenchError
from workbench.records import Conversation
from workbench.recipe import ModelConfig, Recipe
from workbench.train.backend import Platform, detect, unsloth_peft_kwargs
from workbench.train.data import Prepared, as_dataset, end_of_turn_id, prepare
from workbench.train.ranks import World, current_world, describe, model_kwargs
from workbench.train.log import ProgressFn, TrainEvent

__all__ = ["Platform", "Prepared", "TrainResult", "detect", "load_model", "prepare", "train"]
Resume = bool | Literal["fresh", "auto", "required"]


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


def load_model(recipe: Recipe, path: str, plat: Platform) -> tuple[Any, Any]:
    """The base model with LoRA attached (PEFT or Unsloth) and the resolved targets."""
    import torch

    from workbench.train import lora

    lc = recipe.lora
    if plat.backend == "unsloth":
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(
            model_name=path, max_seq_length=recipe.model.max_length, dtype=None, load_in_4bit=plat.quantize,
            device_map={"": current_world().local_rank},
        )
        targets = lora.resolve(model, lc.target_modules, experts=lc.experts)
        # every LoRA option goes through the same PEFT config (and its checks) as on the PEFT path
        kwargs, notes = unsloth_peft_kwargs(lc, lora.peft_config(lc, targets, quantized=plat.quantize))
        targets.notes.extend(notes)
        model = FastLanguageModel.get_peft_model(
            model, **kwargs, use_gradient_checkpointing="unsloth" if plat.gradient_checkpointing else False, random_state=recipe.train.seed
        )
        return model, targets
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    kwargs = model_kwargs(recipe, plat, current_world())
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


def sft_config(recipe: Recipe, plat: Platform, out: Path, *, has_eval: bool, packing: bool | None = None) -> Any:
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
        packing=t.packing if packing is None else packing,
        packing_strategy="bfd",  # padding-free: position ids restart per example, so examples never attend to each other
        # said outright: Unsloth turns padding-free batching on by itself when this is left unset, which
        # packs rows the recipe (or the hybrid-model refusal) keeps apart; packing above is the one switch
        padding_free=False,
        **_checkpointing_args(SFTConfig, plat.gradient_checkpointing and plat.backend != "unsloth",
                              {"use_reentrant": False} if plat.gradient_checkpointing else None),
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
        # DDP: every LoRA weight gets a gradient each step unless routed experts are adapted (an expert a batch
        # never routes to has none), so skip DDP's unused-parameter search except then
        ddp_find_unused_parameters=recipe.lora.experts if current_world().size > 1 else None,
    )


def _trainer_class(sft_trainer: Any) -> Any:
    """TRL's SFTTrainer. TRL <= 1.15 (the versions Unsloth admits) computes every loss with a Triton kernel and
    has none without Triton (a CPU machine): there the loss is the model's own cross-entropy over the same
    labels, with the token count TRL would log."""
    from trl.trainer import utils as trl_utils

    if getattr(trl_utils, "_ChunkedLogProbFunction", True) is not None:
        return sft_trainer
    import torch
    from transformers import Trainer

    class PlainLossSFTTrainer(sft_trainer):  # type: ignore[misc, valid-type]
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            mode = "train" if model.training else "eval"
            if mode == "train":
                n = inputs["attention_mask"].sum() if "attention_mask" in inputs else torch.tensor(inputs["position_ids"].size(1))
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(n.reshape(1).to(model.device)).sum().item())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    return PlainLossSFTTrainer


def _checkpointing_args(config_cls: Any, on: bool, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """TRL 1.16 calls it activation_checkpointing; TRL <= 1.15 (the version Unsloth admits) gradient_checkpointing."""
    import dataclasses

    name = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in dataclasses.fields(config_cls)} else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": kwargs}


def build_trainer(
    recipe: Recipe, model: Any, tokenizer: Any, data: Prepared, plat: Platform, out: Path, callbacks: list[Any], *, packing: bool | None = None
) -> Any:
    """An SFTTrainer over the pre-tokenised rows (TRL keeps their labels as they are); ``packing`` overrides the recipe's."""
    import datasets
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    args = sft_config(recipe, plat, out, has_eval=bool(data.eval), packing=packing)
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
        trainer = _trainer_class(SFTTrainer)(
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
    resume: Resume = False,
    on_progress: ProgressFn | None = None,
    prepared: Prepared | Sequence[Conversation] | None = None,
    data_stages: bool | None = None,
    stage_key: str | None = None,
) -> TrainResult:
    """Train a LoRA/QLoRA adapter as the recipe says; write the run directory; return what happened.

    ``prepared``: rendered-and-masked data (a ``Prepared``), or conversations to render and mask
    (e.g. the output of dedup); without it the recipe's data is ingested and masked here.
    ``resume``: False or "fresh" starts over (earlier checkpoints are set aside); True or "required"
    continues from the newest complete checkpoint written with the same settings and data, and is
    an error naming what changed otherwise; "auto" does so when there is one, else starts over.
    ``data_stages``: whether dedup, decontamination and checks ran first (recorded in run.json).
    The run directory is locked for the duration: a second process gets a clean error.
    """
    from workbench.train.lock import run_lock

    world = current_world()
    if not world.main:
        on_progress = None  # only rank 0 reports, logs and writes; the other ranks train and return
    emit = on_progress or (lambda e: None)
    out = Path(run_dir) if run_dir is not None else recipe.resolved_run_dir()
    mode = "required" if resume is True else "fresh" if resume is False else resume
    if world.size > 1:  # launched ranks: the process that launched them (`--nproc`) holds the run directory's lock
        return _train(recipe, out, mode, emit, prepared, data_stages, stage_key, world)
    with run_lock(out, command="workbench train", on_message=lambda m: emit(TrainEvent("message", message=m))):
        return _train(recipe, out, mode, emit, prepared, data_stages, stage_key, world)


def _train(
    recipe: Recipe, out: Path, mode: Any, emit: ProgressFn, prepared: Prepared | Sequence[Conversation] | None,
    data_stages: bool | None, stage_key: str | None, world: Any,
) -> TrainResult:
    import torch

    from workbench.template.tokenizer import load_tokenizer
    from workbench.train import checkpoints, lora, merging
    from workbench.train import log as trainlog
    from workbench.train.backend import check_quantization
    from workbench.train.packing import packing_refusal

    def say(message: str) -> None:
        emit(TrainEvent("message", message=message))

    check_quantization(recipe)
    ckpt_dir = out / "checkpoints"
    plat = detect(recipe)
    prev_threads = torch.get_num_threads()
    if plat.threads:
        torch.set_num_threads(plat.threads)
    try:
        for note in plat.notes:
            say(note)
        if data_stages is False:
            say("training on the recipe's sources as they are: no dedup, decontamination or check ran (--no-data-stages)")
        path = model_path(recipe.model)
        tokenizer = load_tokenizer(path, template=recipe.model.template, template_kwargs=recipe.model.template_kwargs)
        if isinstance(prepared, Prepared):
            data = prepared
        else:
            data = prepare(recipe, tokenizer, list(prepared) if prepared is not None else None)
        if data.dropped:
            say("dropped before training: " + ", ".join(f"{k} {v}" for k, v in data.dropped.items()))
        out.mkdir(parents=True, exist_ok=True)
        digest = trainlog.data_hash(data.train)
        settings = checkpoints.settings_of(recipe, plat, data)
        key = checkpoints.key_of(settings)
        start = checkpoints.select(ckpt_dir, out, key=key, settings=settings, mode=mode, say=say)
        if start is not None:
            say(f"resuming from {start.name} (complete, written with these settings and data)")
        model, targets = load_model(recipe, path, plat)
        for note in targets.notes:
            say(note)
        refusal = packing_refusal(model) if recipe.train.packing else None
        if refusal:
            say(refusal)
            targets.notes.append(refusal)
        n_train, n_total = lora.trainable(model)
        say(f"{plat.backend} backend, {plat.precision}{', 4-bit NF4 base' if plat.quantize else ''}; LoRA on {targets.describe()} "
            f"[{targets.per_kind()}]; trainable parameters {n_train:,} of {n_total:,} ({100 * n_train / max(n_total, 1):.2f}%)")
        if world.main:
            (out / "recipe.yaml").write_text(f"# workbench train {out / 'recipe.yaml'}\n" + recipe.to_yaml(), encoding="utf-8")
        callbacks = [trainlog.make_callback(emit), checkpoints.marker_callback(key, settings, stage_key)]
        trainer = build_trainer(recipe, model, tokenizer, data, plat, ckpt_dir, callbacks, packing=False if refusal else None)
        try:
            run_metrics = trainer.train(resume_from_checkpoint=str(start) if start else None).metrics
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise WorkbenchError(f"the disk is full: training stopped at step {trainer.state.global_step} ({e.filename or out})",
                                 "free some space; then `workbench train --resume` continues from the newest complete checkpoint") from None  # fmt: skip
        if data.eval and recipe.train.eval_every is None:
            trainer.evaluate()
        stopped = any(getattr(cb, "early_stopping_patience_counter", 0) >= (recipe.train.early_stopping_patience or 10**9) for cb in trainer.callback_handler.callbacks)
        adapter_dir = out / "adapter"
        trainer.save_model(str(adapter_dir))  # every rank: FSDP / ZeRO-3 gather the weights; only rank 0 writes
        if not world.main:
            return _rank_result(out, adapter_dir, plat, trainer, len(data.train))
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
            result.merged_dir = merging.merge([adapter_dir, *m.adapters], out / "merged", base=path, weights=m.weights or None,
                                              combination=m.combination, density=m.density, dtype=m.dtype)  # fmt: skip
        trainlog.write_json(out / "run.json", {
            "recipe": recipe.name, "model": recipe.model.name, "model_path": path, "backend": plat.backend,
            "base_loaded": getattr(getattr(trainer.model, "config", None), "_name_or_path", None),
            "precision": plat.precision, "quantized": plat.quantize, "optimizer": plat.optimizer, "threads": plat.threads,
            "data_hash": digest, "template_hash": trainlog.text_hash(tokenizer.chat_template),
            "data_stages": data_stages,
            "examples": {"train": len(data.train), "eval": len(data.eval), "rows_in": data.rows_in, "dropped": data.dropped},
            "targets": {"modules": targets.modules, "parameters": targets.parameters, "kind": targets.kind, "by_kind": targets.by_kind},
            "packing": {"requested": recipe.train.packing, "used": recipe.train.packing and not refusal, "refused": refusal},
            "checkpoint": {"key": key, "stage_key": stage_key, "resumed_from": start.name if start else None},
            "versions": trainlog.versions(),
            "duration_s": round(result.train_seconds, 1), "tokens": result.tokens, "segments": spent["segments"],
            "eval_loss_from": "best checkpoint (restored)" if best is not None else "last evaluation",
            "hardware": _hardware(plat, world),
            "processes": world.size, "strategy": world.strategy, "distributed": describe(world),
            "accelerate_config": recipe.train.distributed,
            "result": {k: v for k, v in result.__dict__.items() if k not in ("log",)},
        })  # fmt: skip
        emit(TrainEvent("end", step=result.steps, max_steps=trainer.state.max_steps, loss=result.last_loss, eval_loss=result.eval_loss))
        return result
    finally:
        torch.set_num_threads(prev_threads)


def _hardware(plat: Platform, world: World) -> str:
    """One line for the report: the accelerator, or the CPU with the threads torch used (per process)."""
    import platform as pf

    import torch

    each = f"{world.size} processes, each on " if world.size > 1 else ""
    if plat.cuda:
        return f"{each}{torch.cuda.get_device_name(world.local_rank)} (CUDA {torch.version.cuda})"
    cpu = pf.processor() or pf.machine()
    return f"{each}CPU {cpu}, {os.cpu_count()} cores, {plat.threads or torch.get_num_threads()} torch thread(s)"


def _rank_result(out: Path, adapter_dir: Path, plat: Platform, trainer: Any, examples: int) -> TrainResult:
    """What a rank other than 0 returns: the steps it took, nothing it wrote."""
    return TrainResult(run_dir=out, adapter_dir=adapter_dir, backend=plat.backend, steps=trainer.state.global_step,
                       first_loss=None, last_loss=None, eval_loss=None, stopped_early=False, trainable_params=0,
                       total_params=0, tokens_per_s=None, examples=examples, log=[])  # fmt: skip
