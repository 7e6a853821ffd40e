"""Rendering for `workbench run`: a line (and on a terminal a progress bar) per stage, then the stage table."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from workbench.console import err, out, say
from workbench.console.train import train_progress
from workbench.pipeline import Hooks, RunResult, StageRecord
from workbench.printable import visible

MARK = {"ran": ("✓", "green"), "skipped": ("=", "cyan"), "failed": ("✗", "red"), "off": ("-", "dim"), "pending": ("·", "dim")}


def _mark(status: str) -> Text:
    glyph, style = MARK.get(status, (status, ""))
    return Text(glyph, style=style)


@contextlib.contextmanager
def run_display(tty: bool | None = None) -> Iterator[Hooks]:
    """Hooks that show each stage as it runs: a bar for its progress on a terminal, a line when it ends."""
    tty = sys.stderr.isatty() if tty is None else tty
    live: dict[str, Any] = {}

    def close() -> None:
        bar = live.pop("bar", None)
        if bar is not None:
            bar.stop()
        train_cm = live.pop("train_cm", None)
        if train_cm is not None:
            train_cm.__exit__(None, None, None)

    def on_stage(rec: StageRecord) -> None:
        if rec.status == "running":
            err.print(f"[bold]▶ {rec.name}[/]", highlight=False)
            if rec.name == "train":
                cm = train_progress("training")
                live["train_cm"], live["train"] = cm, cm.__enter__()
            elif tty:
                bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), console=err, transient=True)  # fmt: skip
                bar.start()
                live["bar"], live["task"] = bar, bar.add_task(rec.name, total=None)
            return
        close()
        # paths in the message may hold "[/]": the line is Text, never markup
        line = _mark(rec.status) + Text(visible(f" {rec.name:<7} {_secs(rec)} {_counts(rec)} {rec.message}".rstrip()))
        err.print(line, highlight=False, soft_wrap=True)

    def on_progress(stage: str, done: int, total: int | None) -> None:
        bar = live.get("bar")
        if bar is None and tty and stage == "pretrain":  # before any stage: the model is made first
            bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)  # fmt: skip
            bar.start()
            live["bar"], live["task"] = bar, bar.add_task("pretraining", total=total)
        if bar is not None:
            bar.update(live["task"], completed=done, total=total)
        if stage == "pretrain" and total and done >= total:
            close()

    def on_message(text: str) -> None:
        say(err, text)

    def on_train(event: Any) -> None:
        fn = live.get("train")
        if fn is not None:
            fn(event)

    try:
        yield Hooks(stage=on_stage, progress=on_progress, train=on_train, message=on_message)
    finally:
        close()


def render_table(result: RunResult) -> None:
    t = Table(title=Text(visible(f"run {result.run_dir}")), title_justify="left")
    t.add_column("stage")
    t.add_column("status")
    t.add_column("time", justify="right")
    t.add_column("counts")
    for rec in result.stages:
        t.add_row(rec.name, _mark(rec.status) + Text(f" {rec.status}"), _secs(rec) if rec.status == "ran" else "",
                  Text(visible(_counts(rec) or rec.message)))  # fmt: skip
    out.print(t)
    if result.report:
        note = "nothing to do: every stage is up to date; " if result.noop else ""
        say(out, f"{note}report: {result.report}")


def _secs(rec: StageRecord) -> str:
    return f"{rec.seconds:.1f}s" if rec.seconds else ""


def _counts(rec: StageRecord) -> str:
    parts = []
    for k, v in rec.counts.items():
        if k == "path" or v is None:
            continue
        if isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k} {v}")
    return ", ".join(parts[:8])
