"""Rich rendering of `workbench eval`: the before/after table, flip counts and held-out loss."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.eval import Comparison, EvalResults
from workbench.printable import visible


def _p(p: float | None) -> str:
    return "–" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _se(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def render_single(console: Console, res: EvalResults) -> None:
    """One run's scores (no adapter to compare against)."""
    t = Table(title=Text(visible(f"{res.label}: {res.model.get('path')}")), title_justify="left")
    for col, just in (("task", "left"), ("metric", "left"), ("n", "right"), ("score", "right"), ("stderr", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, task in sorted(res.tasks.items()):
        for key, m in sorted(task.metrics.items()):
            t.add_row(Text(visible(name)), Text(key), str(task.n), f"{m.value:.3f}", _se(m.stderr))
    console.print(t)
    if res.heldout:
        console.print(f"held-out loss {res.heldout.loss:.4f} (perplexity {res.heldout.perplexity:.2f}) on {res.heldout.tokens} tokens")


def render_comparison(console: Console, comp: Comparison) -> None:
    t = Table(title="base → base+adapter", title_justify="left")
    for col, just in (("task", "left"), ("metric", "left"), ("n", "right"), ("base", "right"), ("adapter", "right"),
                      ("Δ", "right"), ("p", "right")):  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for d in comp.deltas:
        style = "green" if d.better and d.significant else "red" if d.worse and d.significant else None
        t.add_row(Text(visible(d.task)), Text(d.metric), str(d.n), f"{d.before:.3f}", f"{d.after:.3f}", f"{d.delta:+.3f}", _p(d.p), style=style)
    console.print(t)
    for f in comp.flips:
        console.print(Text(visible(f"{f.task} {f.metric}: {len(f.fail_to_pass)} fail→pass, {len(f.pass_to_fail)} pass→fail of {f.paired} (McNemar p {_p(f.p)})")), highlight=False)
    if comp.heldout:
        h = comp.heldout
        console.print(f"held-out loss {h['before']:.4f} → {h['after']:.4f} (perplexity {h['perplexity_before']:.2f} → {h['perplexity_after']:.2f})")
