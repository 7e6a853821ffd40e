"""Rich rendering of `workbench check`: the probed facts, one table row per finding (worst first), a verdict line."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.checks import CheckReport
from workbench.printable import visible

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_report(console: Console, report: CheckReport, fail_on: str = "error") -> None:
    head = Text()
    head.append(f"{report.rows} rows", style="bold")
    head.append(f", {report.rendered} rendered; strategy {report.strategy}")
    if report.max_length is not None:
        head.append(f", max length {report.max_length}")
    console.print(head, highlight=False)
    facts = _facts_line(report.facts.get("template", {}))
    if facts:
        console.print(Text(visible(facts), style="dim"), highlight=False)

    if not report.findings:
        console.print(Text("no findings", style="bold green"))
        return
    table = Table(box=None, pad_edge=False, show_lines=False, expand=False)
    table.add_column("severity")
    table.add_column("code")
    table.add_column("rows", justify="right")
    table.add_column("what, examples, and what to do", overflow="fold")
    for f in report.findings:
        body = Text(visible(f.message))
        if f.hint:
            body.append(visible(f"\n→ {f.hint}"), style="green")
        rows = str(len(f.example_ids)) if f.example_ids else "-"
        table.add_row(Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")), Text(f.code, style="bold"), rows, body)
        table.add_row("", "", "", "")
    console.print(table)
    counts = report.severity_counts
    verdict = Text(", ".join(f"{n} {sev}{'s' if n != 1 and sev != 'info' else ''}" for sev, n in counts.items()))
    if report.fails(fail_on):
        verdict.append(f"  → fails (--fail-on {fail_on})", style="bold red")
    else:
        verdict.append(f"  → passes (--fail-on {fail_on})", style="bold green")
    console.print(verdict, highlight=False)


def _facts_line(t: dict[str, Any]) -> str:
    if not t:
        return ""
    if not t.get("has_template"):
        return "no chat template"
    parts = [
        f"eos {t.get('eos')!r}",
        f"end of turn {t.get('end_of_turn')!r}",
        f"pad {t.get('pad')!r}",
        f"bos {t.get('bos')!r}" + (" (added by the tokenizer)" if t.get("adds_bos") else ""),
        "generation tags" if t.get("generation_tags") else "no generation tags",
    ]
    return "; ".join(parts)
