"""What a training run leaves behind: progress events, the per-step log, the loss plot, hashes and versions."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.records import Rendered

PACKAGES = ("workbench", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets", "unsloth")


@dataclass
class TrainEvent:
    """One thing worth telling the user: a step, a log line, an evaluation, a message, the end."""

    kind: str  # start | step | log | eval | message | end
    step: int = 0
    max_steps: int = 0
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    message: str | None = None


ProgressFn = Callable[[TrainEvent], None]


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (None when absent), and Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def data_hash(rows: Sequence[Rendered]) -> str:
    """A hash of exactly what is trained on: every example's input ids and labels, in order."""
    h = hashlib.blake2b(digest_size=16)
    for r in rows:
        h.update(json.dumps([r.input_ids, r.labels], separators=(",", ":")).encode())
    return h.hexdigest()


def text_hash(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest()[:32] if text else None


def make_callback(on_progress: ProgressFn | None) -> Any:
    """A transformers TrainerCallback that times training steps, adds tokens/s to each log record and
    forwards progress events. tokens/s counts only time inside training steps (evaluation excluded)."""
    from transformers import TrainerCallback

    emit = on_progress or (lambda event: None)

    class ProgressCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.step_started = 0.0
            self.train_time = 0.0  # seconds inside steps since the last log
            self.last_tokens: float | None = None
            self.last_wall = time.perf_counter()
            self.resumed = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            # TRL counts tokens from 0 in every session, and the log history (kept in checkpoints) carries
            # each record's own seconds and tokens: their sums span every resumed segment
            self.last_tokens, self.last_wall, self.resumed = 0.0, time.perf_counter(), state.global_step > 0
            emit(TrainEvent("start", step=state.global_step, max_steps=state.max_steps))

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.train_time += time.perf_counter() - self.step_started
            emit(TrainEvent("step", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch))

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = logs or {}
            record = state.log_history[-1] if state.log_history else {}
            now = time.perf_counter()
            record["seconds"], self.last_wall = round(now - self.last_wall, 3), now  # wall time since the last record
            if self.resumed:
                record["resumed"], self.resumed = True, False  # the first record of a resumed session
            if "loss" in logs and "num_tokens" in logs:
                tokens = float(logs["num_tokens"])
                delta = tokens - self.last_tokens if self.last_tokens is not None and tokens >= self.last_tokens else None
                if delta is not None:
                    record["tokens"] = int(delta)
                if delta is not None and self.train_time > 0:
                    record["tokens_per_s"] = delta / self.train_time
                self.last_tokens, self.train_time = tokens, 0.0
                emit(
                    TrainEvent(
                        "log", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
                        loss=logs.get("loss"), learning_rate=logs.get("learning_rate"),
                        tokens_per_s=record.get("tokens_per_s"),
                    )
                )
            elif "eval_loss" in logs:
                emit(TrainEvent("eval", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch, eval_loss=logs["eval_loss"]))

    return ProgressCallback()


def step_log(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trainer's log history as one record per logged step: loss, eval loss, lr, tokens/s."""
    keep = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_s", "num_tokens", "mean_token_accuracy", "resumed")
    by_step: dict[int, dict[str, Any]] = {}
    for rec in log_history:
        if "step" not in rec or not ({"loss", "eval_loss"} & rec.keys()):
            continue
        row = by_step.setdefault(int(rec["step"]), {"step": int(rec["step"])})
        row.update({k: rec[k] for k in keep if k in rec})
        for k in ("seconds", "tokens"):  # a step's train and eval records both count
            if isinstance(rec.get(k), (int, float)):
                row[k] = row.get(k, 0) + rec[k]
    return [by_step[k] for k in sorted(by_step)]


def totals(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall seconds, tokens and sessions over every segment of a run (a resumed run's log holds them all)."""
    return {"seconds": round(sum(r.get("seconds", 0.0) for r in log), 1), "tokens": int(sum(r.get("tokens", 0) for r in log)),
            "segments": 1 + sum(1 for r in log if r.get("resumed"))}  # fmt: skip


def plot_loss(log: list[dict[str, Any]], path: Path, title: str = "training loss") -> Path | None:
    """Training (and eval) loss against step as a PNG; None when nothing was logged (the report's figure)."""
    from workbench.report.figures import loss_figure

    return loss_figure(log, path, title)


def write_json(path: Path, obj: Any) -> None:
    from workbench.outputs import atomic_text

    with atomic_text(path) as fh:
        json.dump(obj, fh, indent=2, default=_default)
        fh.write("\n")


def _default(o: Any) -> Any:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


def save_generation_config(model: Any, tokenizer: Any, dest: Path, end_of_turn: int | None) -> list[str]:
    """generation_config.json whose eos ids include the template's end-of-turn token (so generation stops)."""
    from transformers import GenerationConfig

    base = getattr(model, "generation_config", None) or GenerationConfig()
    gen = GenerationConfig.from_dict(base.to_dict())
    eos = gen.eos_token_id
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    notes: list[str] = []
    for extra in (end_of_turn, tokenizer.eos_token_id):
        if extra is not None and extra not in ids:
            ids.append(int(extra))
            notes.append(f"added {tokenizer.convert_ids_to_tokens(int(extra))!r} to generation_config eos_token_id")
    gen.eos_token_id = ids if len(ids) > 1 else (ids[0] if ids else None)
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    gen.save_pretrained(str(dest))
    return notes


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from workbench.outputs import write_jsonl as write

    write(path, rows)
