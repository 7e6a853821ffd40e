"""Rendering for `train`, `plan` and `merge`: a live progress bar with loss and ETA, result and plan tables."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from workbench.console import err, out, say
from workbench.printable import visible

if TYPE_CHECKING:
    from workbench.train import Plan, TrainEvent, TrainResult


@contextlib.contextmanager
def train_progress(description: str = "training") -> Iterator[Any]:
    """Yield an ``on_progress(event)`` callback: a bar with step, loss, eval loss, tokens/s and ETA on a
    terminal; elsewhere only messages and evaluations, one line each, on stderr."""
    if not sys.stderr.isatty():

        def plain(event: TrainEvent) -> None:
            if event.kind == "message":
                say(err, event.message)
            elif event.kind == "eval" and event.eval_loss is not None:
                err.print(f"step {event.step}/{event.max_steps}: eval loss {event.eval_loss:.4f}", highlight=False)

        yield plain
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("eval {task.fields[eval]}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with bar:
        task = bar.add_task(escape(visible(description)), total=None, loss="-", eval="-", speed="-")  # a recipe name may hold "[/]"

        def update(event: TrainEvent) -> None:
            if event.kind == "message":
                say(bar.console, event.message)
                return
            fields: dict[str, Any] = {}
            if event.max_steps:
                fields["total"] = event.max_steps
            if event.kind in ("start", "step", "end"):
                fields["completed"] = event.step
            if event.loss is not None:
                fields["loss"] = f"{event.loss:.4f}"
            if event.eval_loss is not None:
                fields["eval"] = f"{event.eval_loss:.4f}"
            if event.tokens_per_s:
                fields["speed"] = f"{event.tokens_per_s:,.0f}"
            bar.update(task, **fields)

        yield update


def render_result(result: TrainResult) -> None:
    """The run's outcome as a two-column table on stdout."""
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()

    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "-" if x is None else format(x, spec)

    t.add_row("run", Text(visible(str(result.run_dir))))  # paths may hold "[/]": Text, not markup
    t.add_row("adapter", Text(visible(str(result.adapter_dir))))
    t.add_row("backend", result.backend)
    t.add_row("examples", f"{result.examples:,}")
    t.add_row("steps", f"{result.steps:,}" + ("  (stopped early)" if result.stopped_early else ""))
    t.add_row("loss", f"{fmt(result.first_loss)} -> {fmt(result.last_loss)}")
    t.add_row("eval loss", fmt(result.eval_loss))
    t.add_row("tokens/s", fmt(result.tokens_per_s, ",.0f"))
    pct = 100 * result.trainable_params / max(result.total_params, 1)
    t.add_row("trainable", f"{result.trainable_params:,} of {result.total_params:,} ({pct:.2f}%)")
    if result.merged_dir:
        t.add_row("merged", Text(visible(str(result.merged_dir))))
    for note in result.notes:
        t.add_row("note", Text(visible(note)))
    out.print(t)


def render_plan(plan: Plan) -> None:
    """GB per component for each method, with and without gradient checkpointing."""
    out.print(
        f"[bold]{escape(visible(str(plan.model)))}[/]: {plan.kind}, {_count(plan.params)} parameters, seq {plan.seq}, batch {plan.batch}, "
        f"LoRA rank {plan.rank} on {escape(plan.targets)}, {plan.optimizer}, {plan.logits} logits",
        highlight=False,
    )
    t = Table(title="GPU memory, GB")
    for col in ("method", "ckpt", "weights", "adapter", "grads", "optim", "activ", "extra", "total"):
        t.add_column(col, justify="left" if col in ("method", "ckpt") else "right")
    for r in plan.rows:
        t.add_row(
            r.method, "on" if r.checkpointing else "off",
            *(f"{x:.1f}" for x in (r.weights, r.adapter, r.gradients, r.optimizer, r.activations, r.overhead)),
            f"[bold]{r.total:.1f}[/]",
        )
    out.print(t)
    if plan.by_kind:
        k = Table(title="LoRA targets per layer kind")
        for col in ("kind", "layers adapted", "modules adapted", "not adapted"):
            k.add_column(col)
        for kind, d in plan.by_kind.items():
            left = [m for m in d["linear"] if m not in d["adapted"]]
            k.add_row(kind, f"{d['adapted_layers']}/{d['layers']}", ", ".join(d["adapted"]) or "-", ", ".join(left) or "-")
        out.print(k)
    for note in plan.assumptions:
        err.print(f"- {escape(note)}", highlight=False)
    err.print(
        "GB = 10^9 bytes; ckpt = gradient checkpointing; extra = CUDA context and allocator slack. "
        "An estimate from config.json (the arithmetic is in workbench/train/plan.py).",
        highlight=False,
    )


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
