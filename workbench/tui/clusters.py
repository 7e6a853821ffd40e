"""A dedup result laid onto the table's rows as arrays: removed rows, reasons, clusters largest first, conflicts.

Built once per dedup run, so the Duplicates screen and the filters read arrays and never walk the
result again. Fields of the result are read through `workbench.dedup`'s public classes with
``getattr`` defaults, so a dedup that adds or moves fields does not break the app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Finder = Callable[[str], list[int]]  # a file:line or a content id → the table rows it names


@dataclass
class Dupes:
    """Everything the app shows of one dedup run, by table row."""

    result: Any  # the dedup.DedupResult, kept whole for export
    table_rows: np.ndarray  # dedup input position → table row
    reasons: list[str]  # reason names; reason[row] - 1 indexes this
    reason: np.ndarray  # per table row: 0 kept (or not a conversation), else 1 + index into reasons
    similarity: np.ndarray  # per table row, of a removed row to the row kept in its place
    keeper: np.ndarray  # per table row: the table row kept in its place, -1 if none
    cluster_of: np.ndarray  # per table row: cluster id, 0 none
    order: np.ndarray  # cluster ids, largest cluster first
    kept: dict[int, int] = field(default_factory=dict)  # cluster id → table row of its kept row
    members: dict[int, np.ndarray] = field(default_factory=dict)  # cluster id → removed table rows
    conflicts: list[list[int]] = field(default_factory=list)  # table rows sharing a prompt, different answers
    counts: dict[str, int] = field(default_factory=dict)

    def removed(self, row: int) -> bool:
        return 0 <= row < len(self.reason) and bool(self.reason[row])

    def reason_of(self, row: int) -> str | None:
        k = int(self.reason[row]) if 0 <= row < len(self.reason) else 0
        return self.reasons[k - 1] if k else None

    def rows(self, cid: int) -> list[int]:
        """A cluster's kept row, then the rows removed in its place."""
        kept = self.kept.get(cid)
        rest = [int(r) for r in self.members.get(cid, ())]
        return ([kept] if kept is not None else []) + rest

    def rows_for_reason(self, reason: str) -> np.ndarray:
        if reason not in self.reasons:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(self.reason == self.reasons.index(reason) + 1).astype(np.int64)


def build(result: Any, table_rows: Sequence[int], n: int, find: Finder | None = None) -> Dupes:
    """``result`` over ``n`` table rows; ``table_rows[k]`` is the table row of dedup's k-th input.

    ``find`` places findings that name rows by ``file:line`` or content id rather than by position.
    """
    tr = np.asarray(table_rows, dtype=np.int64)
    reason = np.zeros(n, dtype=np.uint8)
    sim = np.zeros(n, dtype=np.float32)
    keeper = np.full(n, -1, dtype=np.int64)
    cluster_of = np.zeros(n, dtype=np.int32)
    names: list[str] = []
    by_cluster: dict[int, list[int]] = {}
    for rm in getattr(result, "removed", ()):
        pos = getattr(rm, "row", -1)
        if not 0 <= pos < len(tr):
            continue
        row = int(tr[pos])
        why = str(getattr(rm, "reason", "removed"))
        if why not in names:
            names.append(why)
        reason[row] = names.index(why) + 1
        sim[row] = float(getattr(rm, "similarity", 0.0) or 0.0)
        kp = getattr(rm, "kept_row", None)
        if isinstance(kp, int) and 0 <= kp < len(tr):
            keeper[row] = tr[kp]
        cid = getattr(rm, "cluster", None)
        if cid:
            cluster_of[row] = cid
            by_cluster.setdefault(int(cid), []).append(row)
    kept: dict[int, int] = {}
    for c in getattr(result, "clusters", ()):
        kp = getattr(c, "kept_row", None)
        if isinstance(kp, int) and 0 <= kp < len(tr):
            kept[int(c.id)] = int(tr[kp])
            cluster_of[int(tr[kp])] = c.id
    members = {cid: np.asarray(sorted(rows), dtype=np.int64) for cid, rows in by_cluster.items()}
    ids = np.asarray(sorted(set(kept) | set(members)), dtype=np.int64)
    sizes = np.asarray([len(members.get(int(c), ())) + (int(c) in kept) for c in ids], dtype=np.int64)
    order = ids[np.lexsort((ids, -sizes))] if len(ids) else ids
    d = Dupes(result, tr, names, reason, sim, keeper, cluster_of, order, kept, members,
              counts=dict(getattr(result, "counts", {}) or {}))  # fmt: skip
    for f in getattr(result, "findings", ()):
        if getattr(f, "code", "") == "conflicting_answers":
            d.conflicts = conflict_groups(f, tr, find or (lambda ref: []))
    return d


def conflict_groups(f: Any, table_rows: np.ndarray, find: Finder) -> list[list[int]]:
    """The rows of a ``conflicting_answers`` finding, however it names them: positions, ``file:line``, ids."""
    data = f.data if isinstance(getattr(f, "data", None), dict) else {}
    groups: list[list[int]] = []

    def place(ref: Any) -> int | None:
        if isinstance(ref, bool):
            return None
        if isinstance(ref, int):
            return int(table_rows[ref]) if 0 <= ref < len(table_rows) else None
        if isinstance(ref, dict):  # {"source": ..., "id": ..., "row": ...}
            for key in ("source", "row", "id"):
                if key in ref:
                    hit = place(ref[key])
                    if hit is not None:
                        return hit
            return None
        if isinstance(ref, str):
            rows = find(ref)
            return rows[0] if rows else None
        return None

    raw = data.get("groups") or data.get("rows") or []
    for g in raw if isinstance(raw, list) else []:
        members = g if isinstance(g, list) else [g]
        rows = sorted({r for r in (place(x) for x in members) if r is not None})
        if rows:
            groups.append(rows)
    if not groups:  # no usable groups: each example id names a group's first row
        for eid in getattr(f, "example_ids", ()) or ():
            rows = find(eid)
            if rows:
                groups.append(sorted(rows))
    return groups
