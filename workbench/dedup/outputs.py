"""The file side of dedup: per-row overrides, atomic kept/removed outputs, the report, and the file runner."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ContextManager

from workbench.dedup.engine import REASONS, DedupConfig, DedupResult, Removed, dedup
from workbench.dedup.views import text_view
from workbench.errors import UsageError, WorkbenchError
from workbench.records import Conversation

ProgressFactory = Callable[..., ContextManager[Callable[[int, "int | None"], None]]]



def apply_overrides(result: DedupResult, overrides: Mapping[int, str]) -> DedupResult:
    """A copy of ``result`` with per-row decisions overridden: ``{row: "keep" | "drop"}`` (0-based
    input rows). A dropped kept row is removed with reason ``manual``; a kept removed row rejoins
    the kept rows in input order. Counts are recomputed; they still add up."""
    if not overrides:
        return result
    bad = {v for v in overrides.values()} - {"keep", "drop"}
    if bad:
        raise WorkbenchError(f"unknown override {sorted(bad)[0]!r}", "use 'keep' or 'drop'")
    rows: dict[int, Conversation | Removed] = dict(zip(result.kept_rows, result.kept))
    rows.update({r.row: r for r in result.removed})
    for row, what in overrides.items():
        cur = rows.get(row)
        if cur is None:
            raise WorkbenchError(f"override for row {row}: no such row")
        if what == "keep" and isinstance(cur, Removed):
            rows[row] = cur.conv
        elif what == "drop" and isinstance(cur, Conversation):
            rows[row] = Removed(cur, "manual", None, None, 0.0, row=row, detail="dropped by hand")
    kept_rows = [r for r in sorted(rows) if isinstance(rows[r], Conversation)]
    kept = [rows[r] for r in kept_rows]
    removed = [rows[r] for r in sorted(rows) if isinstance(rows[r], Removed)]
    counts = _counts(result.counts["read"], kept, removed)  # type: ignore[arg-type]
    assert counts["read"] == counts["kept"] + counts["removed"], counts
    return replace(result, kept=kept, removed=removed, kept_rows=kept_rows, counts=counts)  # type: ignore[arg-type]


def _counts(n: int, kept: Sequence[Any], removed: Sequence[Removed]) -> dict[str, int]:
    by = Counter(r.reason for r in removed)
    return {"read": n, "kept": len(kept), "removed": len(removed), **{r: by.get(r, 0) for r in REASONS}}


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def write_outputs(
    result: DedupResult,
    kept_path: str | os.PathLike[str],
    removed_path: str | os.PathLike[str],
    *,
    overrides: Mapping[int, str] | None = None,
    fmt: str | None = None,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> DedupResult:
    """Write kept rows (canonical messages; JSONL, Parquet or HF dir by name or ``fmt``) and removed
    rows (JSONL with a ``removed`` reason object), after ``overrides``. Both files are written to
    temporary names and renamed only when both are complete. Paths in ``protect`` (the inputs) are
    never overwritten. Returns the result as written."""
    from workbench.data.export import format_for, write_conversations
    from workbench.outputs import atomic_path, write_jsonl

    for out in (kept_path, removed_path):
        for p in protect:
            if _same_file(out, p):
                raise WorkbenchError(f"refusing to overwrite input {p}", "choose another -o/--removed path")
    if _same_file(kept_path, removed_path):
        raise UsageError("the kept and removed outputs are the same file", "give -o and --removed different paths")
    final = apply_overrides(result, overrides or {})
    kind = format_for(kept_path, fmt)
    with atomic_path(kept_path) as tmp_kept, atomic_path(removed_path) as tmp_removed:
        write_conversations(tmp_kept, final.kept, kind)
        write_jsonl(tmp_removed, (r.to_dict() for r in final.removed))
    return final


def summary(result: DedupResult, *, top: int = 10, preview: int = 100) -> dict[str, Any]:
    """The report as one JSON-ready object: counts, config, the biggest clusters, findings, against sets."""
    biggest = sorted(result.clusters, key=lambda c: (-c.size, c.id))[:top]
    return {
        "counts": dict(result.counts),
        "clusters": len(result.clusters),
        "biggest_clusters": [
            {
                "cluster": c.id,
                "size": c.size,
                "reasons": c.reasons,
                "kept_id": c.kept.id,
                "kept_source": str(c.kept.source),
                "preview": " ".join(text_view(c.kept, result.config.on).split())[:preview],
            }
            for c in biggest
        ],
        "findings": [f.to_dict() for f in result.findings],
        "against": [{"path": s.path, "reason": s.reason, "items": len(s.items), "notes": s.notes} for s in result.against],
        "stats": dict(result.stats),
        "config": asdict(result.config),
    }


# --- the file runner (what `workbench dedup` calls) ---------------------------------------------


def default_paths(first_input: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``data.jsonl`` → ``data.dedup.jsonl`` and ``data.removed.jsonl`` beside it."""
    p = Path(os.fspath(first_input).rstrip("/"))
    stem = p.name.rsplit(".", 1)[0] if p.suffix else p.name
    return p.with_name(f"{stem}.dedup.jsonl"), p.with_name(f"{stem}.removed.jsonl")


@dataclass
class DedupRun:
    """What ``run_files`` did: the decisions, where they were written, and counts that add up
    (rows read = kept + removed + rejected by ingest)."""

    result: DedupResult
    inputs: list[str]
    kept_path: str | None
    removed_path: str | None
    rejects_path: str | None
    report_path: str | None
    rows_read: int
    rejected: int
    dry_run: bool
    seconds: float
    rejects: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = summary(self.result)
        d["counts"] = {"rows_read": self.rows_read, "rejected": self.rejected, **d["counts"]}
        d["outputs"] = {
            "kept": self.kept_path,
            "removed": self.removed_path,
            "rejects": self.rejects_path,
            "report": self.report_path,
            "dry_run": self.dry_run,
        }
        d["inputs"] = self.inputs
        d["seconds"] = round(self.seconds, 3)
        return d


@contextlib.contextmanager
def _quiet(description: str, total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    yield lambda done, total=None: None


def run_files(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    removed: str | os.PathLike[str] | None = None,
    against: Sequence[str | os.PathLike[str]] = (),
    leak: bool = False,
    config: DedupConfig | None = None,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    report: str | os.PathLike[str] | None = None,
    progress: ProgressFactory | None = None,
) -> DedupRun:
    """Read ``inputs`` (and ``against`` files), dedup, and write kept, removed (and ingest's rejects,
    if any) atomically; with ``dry_run`` only the report is written. Refuses to overwrite an input."""
    from workbench.data import ingest
    from workbench.dedup.decontam import load_against

    started = time.perf_counter()
    if not inputs:
        raise UsageError("no input files", "workbench dedup data.jsonl")
    progress = progress or _quiet
    kept_default, removed_default = default_paths(inputs[0])
    kept_path = Path(output) if output else kept_default
    removed_path = Path(removed) if removed else removed_default
    rejects_path = ingest.default_rejects_path(kept_path)
    protect = [*inputs, *against]
    for out in [kept_path, removed_path, rejects_path, *([report] if report else [])]:
        for p in protect:
            if _same_file(out, p):
                raise WorkbenchError(f"refusing to overwrite input {p}", "choose another -o/--removed/--report path")
    sets = [load_against(p, leak=leak, view=text_view) for p in against]  # before the long read: fail fast
    with progress("reading") as update:
        data = ingest.load(list(inputs), format=format, mapping=mapping, on_progress=update)
    with progress("dedup", len(data.conversations)) as update:
        result = dedup(data.conversations, config=config, against=sets, on_progress=update)
    wrote_rejects = None
    if not dry_run:
        result = write_outputs(result, kept_path, removed_path, protect=protect)
        if data.rejects:
            from workbench.outputs import write_jsonl

            write_jsonl(rejects_path, (r.to_dict() for r in data.rejects))
            wrote_rejects = str(rejects_path)
    assert data.rows_read == result.counts["kept"] + result.counts["removed"] + len(data.rejects) or data.rows_read == 0
    run = DedupRun(
        result,
        [str(p) for p in inputs],
        None if dry_run else str(kept_path),
        None if dry_run else str(removed_path),
        wrote_rejects,
        str(report) if report else None,
        data.rows_read,
        len(data.rejects),
        dry_run,
        time.perf_counter() - started,
        data.rejects,
    )
    if report:
        from workbench.outputs import atomic_text

        with atomic_text(report) as fh:
            json.dump(run.to_dict(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
    return run
