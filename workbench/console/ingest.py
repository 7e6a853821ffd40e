"""Rich rendering of `workbench ingest`: counts by reason, the schema read per file, lint findings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.data import IngestReport
from workbench.printable import visible

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
EXAMPLE_IDS = 3


def render_summary(console: Console, report: IngestReport) -> None:
    """The counts (read = written + rejected), per-file schema, rejects by reason and lint findings."""
    head = Text()
    head.append(f"read {report.read} rows", style="bold")
    head.append(visible(f": wrote {report.written} to {report.output} ({report.output_format})"))
    head.append(f", rejected {report.rejected}", style="red" if report.rejected else "")
    head.append(visible(f" → {report.rejects_path}") if report.rejected else "")
    head.append(f"  [{report.seconds:.1f}s]", style="dim")
    console.print(head, highlight=False)

    files = Table(title="files", title_justify="left", box=None, pad_edge=False)
    for name, justify in (("file", "left"), ("format", "left"), ("read", "right"), ("written", "right"), ("rejected", "right")):
        files.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, counts in report.per_file.items():
        fmt = report.formats.get(name, "?")
        files.add_row(Text(visible(name, newlines=False)), Text(fmt, style="red" if fmt == "unknown" else ""),
                      str(counts["read"]), str(counts["written"]), str(counts["rejected"]))  # fmt: skip
    console.print(files)

    if report.rejected_by_reason:
        reasons = Table(title="rejected by reason", title_justify="left", box=None, pad_edge=False)
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        reasons.add_column("first seen at")
        for reason, n in report.rejected_by_reason.items():
            first = next((r for r in report.reject_examples if r.reason == reason), None)
            where = (first.where() + (f" ({first.field})" if first.field else "")) if first else ""
            reasons.add_row(reason, str(n), Text(visible(where, newlines=False)))
        console.print(reasons)

    if report.findings:
        lint = Table(title="content lint (reported, not fixed)", title_justify="left", box=None, pad_edge=False)
        lint.add_column("severity")
        lint.add_column("code")
        lint.add_column("finding")
        for f in report.findings:
            ids = ", ".join(f.example_ids[:EXAMPLE_IDS])
            body = Text(visible(f.message))
            body.append(visible(f"\ne.g. {ids}"), style="dim")
            if f.hint:
                body.append(visible(f"\nhint: {f.hint}"), style="dim")
            lint.add_row(Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")), Text(f.code), body)
        console.print(lint)
