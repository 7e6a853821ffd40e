"""Rich rendering of `workbench dedup`: counts by reason, the biggest clusters, --against sets, findings."""

from __future__ import annotations

from collections import Counter

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
    res = run.result
    c = res.counts
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
        "near": f"Jaccard >= {res.config.threshold} on {res.config.ngram}-word shingles (verified)",
        "contaminated": "matches an eval item (--against)",
        "leaked": "matches a row of another split (--against)",
        "manual": "dropped by hand",
    }
    for reason, text in meaning.items():
        if c.get(reason) or reason in ("exact", "near"):
            reasons.add_row(Text(reason, style=REASON_STYLE[reason]), str(c.get(reason, 0)), text)
    console.print(reasons)

    if res.clusters:
        top = sorted(res.clusters, key=lambda k: (-k.size, k.id))[:TOP]
        clusters = Table(title=f"biggest clusters ({res.stats.get('clusters', len(res.clusters))} in all)", title_justify="left", box=None, pad_edge=False)
        for name, justify in (("cluster", "right"), ("rows", "right"), ("kept", "left"), ("preview", "left")):
            clusters.add_column(name, justify=justify)  # type: ignore[arg-type]
        from workbench.dedup import text_view

        for k in top:
            preview = " ".join(text_view(k.kept, res.config.on).split())
            preview = preview if len(preview) <= PREVIEW else preview[: PREVIEW - 1] + "…"
            source = visible(str(k.kept.source), newlines=False)
            clusters.add_row(str(k.id), str(k.size), Text(source), Text(visible(preview, newlines=False)))
        console.print(clusters)

    if res.against:
        by_file = Counter(r.against_file for r in res.removed if r.against_file)
        table = Table(title="checked against", title_justify="left", box=None, pad_edge=False)
        for name, justify in (("file", "left"), ("items", "right"), ("reason", "left"), ("rows removed", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for s in res.against:
            table.add_row(Text(visible(s.path, newlines=False)), str(len(s.items)), Text(s.reason, style=REASON_STYLE[s.reason]), str(by_file.get(s.path, 0)))
        console.print(table)
        for s in res.against:
            for note in s.notes:
                console.print(Text(visible(f"note: {s.path}: {note}"), style="yellow"))

    for f in res.findings:
        body = Text(f"{f.severity}: ", style=SEVERITY_STYLE.get(f.severity, ""))
        body.append(visible(f"{f.code}: {f.message}"))
        if f.hint:
            body.append(visible(f"\n  hint: {f.hint}"), style="dim")
        console.print(body)

    if run.dry_run:
        console.print(Text("dry run: no kept/removed files written", style="yellow"))
    else:
        out = Text(visible(f"kept → {run.kept_path}\nremoved → {run.removed_path}"), style="dim")
        if run.rejects_path:
            out.append(visible(f"\nrejected → {run.rejects_path}"))
        console.print(out)
    if run.report_path:
        console.print(Text(visible(f"report → {run.report_path}"), style="dim"))
