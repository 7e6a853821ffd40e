"""Rich rendering of `workbench stats`: a table of distributions and a terminal length histogram."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

BAR = "█"


def render_summary(console: Console, summary: dict[str, Any], hist: list[tuple[float, float, int]], hist_label: str) -> None:
    t = Table(title=f"{summary['rows']} examples", title_justify="left")
    t.add_column("metric")
    for name in ("min", "mean", "p50", "p90", "p99", "max"):
        t.add_column(name, justify="right")
    for name, d in summary["columns"].items():
        if not d["count"]:
            continue
        t.add_row(name, *(_fmt(d[k]) for k in ("min", "mean", "p50", "p90", "p99", "max")))
    console.print(t)

    roles = Table(title="turns by role", title_justify="left")
    for r in summary["roles"]:
        roles.add_column(r, justify="right")
    roles.add_row(*(str(v) for v in summary["roles"].values()))
    console.print(roles)

    facts = [f"rows with a system turn: {summary['rows_with_system']}",
             f"rows whose last turn is not the assistant's: {summary['last_role_not_assistant']}"]
    if "trained_share" in summary:
        facts.append(f"trained-token share: {summary['trained_share']:.1%}" if summary["trained_share"] is not None else "")
        facts.append(f"rows with zero trained tokens: {summary['zero_trained_tokens']}")
        facts.append(f"rows the template could not render: {summary['render_errors']}")
    if "over_max_length" in summary:
        facts.append(f"rows over max length {summary['max_length']}: {summary['over_max_length']}")
    for line in facts:
        if line:
            console.print(line)
    if hist:
        console.print(Text(f"\n{hist_label} per example", style="bold"))
        render_histogram(console, hist)


def render_histogram(console: Console, hist: list[tuple[float, float, int]], width: int = 40) -> None:
    peak = max(c for _, _, c in hist) or 1
    for lo, hi, c in hist:
        bar = BAR * max(1 if c else 0, round(width * c / peak))
        upper = "more" if hi == float("inf") else f"{hi:.0f}"
        console.print(f"{lo:>9.0f} – {upper:<9} {bar} {c}", highlight=False)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"
