"""Dedup results as files: per-row overrides, atomic kept/removed outputs in canonical messages, the summary."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from workbench.dedup.engine import REASONS, DedupResult, Removed
from workbench.dedup.views import text_view
from workbench.errors import WorkbenchError
from workbench.records import Conversation


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
    from workbench.outputs import atomic_path, guard, write_jsonl

    guard([("kept output", kept_path), ("removed output", removed_path)], protect)
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
