"""Rich rendering of `workbench dedup`: counts by reason, the biggest clusters, --against sets, findings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.dedup import DedupRun
from workbench.printable import visible

REASON_STYLE = {"exact": "cyan", "near": "blue", "contaminated": "bold red", "leaked": "red", "manual": "magenta"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
TOP = 8
PREVIEW = 70


def render_summary(console: Console, run: DedupRun) -> None:
    """Read = kept + removed (+ rejected), removed by reason, the biggest clusters with a preview."""
    c = run.counts
    cfg = run.config
    head = Text()
    head.append(f"read {run.rows_read} rows", style="bold")
    head.append(f": kept {c['kept']}, removed {c['removed']}")
    if run.rejected:
        head.append(f", rejected by ingest {run.rejected}", style="red")
    head.append(f"  [{run.seconds:.1f}s]", style="dim")
    console.print(head, highlight=False)

    reasons = Table(title="removed by reason", title_justify="left", box=None, pad_edge=False)
    reasons.add_column("reason")
    reasons.add_column("rows", justify="right")
    reasons.add_column("meaning", style="dim")
    meaning = {
        "exact": "same text after case/whitespace/Unicode folding",
        "near": f"Jaccard >= {cfg.threshold} on {cfg.ngram}-word shingles (verified)",
        "contaminated": "matches an eval item (--against)",
        "leaked": "matches a row of another split (--against)",
        "manual": "dropped by hand",
    }
    for reason, text in meaning.items():
        if c.get(reason) or reason in ("exact", "near"):
            reasons.add_row(Text(reason, style=REASON_STYLE[reason]), str(c.get(reason, 0)), text)
    console.print(reasons)

    if run.biggest:
        clusters = Table(title=f"biggest clusters ({run.clusters} in all)", title_justify="left", box=None, pad_edge=False)
        for name, justify in (("cluster", "right"), ("rows", "right"), ("kept", "left"), ("preview", "left")):
            clusters.add_column(name, justify=justify)  # type: ignore[arg-type]
        for k in run.biggest[:TOP]:
            preview = k["preview"] if len(k["preview"]) <= PREVIEW else k["preview"][: PREVIEW - 1] + "…"
            clusters.add_row(str(k["cluster"]), str(k["size"]), Text(visible(k["kept_source"], newlines=False)), Text(visible(preview, newlines=False)))
        console.print(clusters)

    if run.against:
        table = Table(title="checked against", title_justify="left", box=None, pad_edge=False)
        for name, justify in (("file", "left"), ("items", "right"), ("reason", "left"), ("rows removed", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for s in run.against:
            table.add_row(Text(visible(s.path, newlines=False)), str(len(s.items)), Text(s.reason, style=REASON_STYLE[s.reason]),
                          str(run.against_removed.get(s.path, 0)))  # fmt: skip
        console.print(table)
        for s in run.against:
            for note in s.notes:
                console.print(Text(visible(f"note: {s.path}: {note}"), style="yellow"))

    for f in run.findings:
        body = Text(f"{f.severity}: ", style=SEVERITY_STYLE.get(f.severity, ""))
        body.append(visible(f"{f.code}: {f.message}"))
        if f.hint:
            body.append(visible(f"\n  hint: {f.hint}"), style="dim")
        console.print(body)

    how = str(run.stats.get("kernels", ""))
    if how.startswith("jit"):
        console.print(Text(f"note: the dedup kernels were compiled for this run only: {how}", style="yellow"))

    if run.dry_run:
        console.print(Text("dry run: no kept/removed files written", style="yellow"))
    else:
        rows = "canonical messages" if run.canonical else "rows as written in the input"
        out = Text(visible(f"kept → {run.kept_path} ({rows})\nremoved → {run.removed_path}"), style="dim")
        if run.rejects_path:
            out.append(visible(f"\nrejected → {run.rejects_path}"))
        console.print(out)
    if run.report_path:
        console.print(Text(visible(f"report → {run.report_path}"), style="dim"))
