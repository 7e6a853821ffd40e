"""Keep/drop decisions saved as they are made, in a sidecar file beside the data, and read back on open.

The sidecar (``data.jsonl.workbench-decisions.jsonl``) is an append-only log, one JSON object a
line: ``{"source": "data.jsonl:12", "id": "<content id>", "decision": "keep" | "drop" | null}``,
and ``{"exported": "<kept path>", "removed": "<removed path>"}`` after an export. Each line is written
with one ``write`` and flushed to disk, so a crash loses at most the line being written, and a torn
last line is skipped on reading. The last record for a row wins. A row is found again by its
``file:line`` when the content there still has the same id, else by its id alone (the file was
edited and rows moved); a record that matches no row is kept in the log and counted, never dropped.
The data file itself is never opened for writing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = ".workbench-decisions.jsonl"


def sidecar_path(first_input: str | os.PathLike[str]) -> Path:
    """``data/train.jsonl`` → ``data/train.jsonl.workbench-decisions.jsonl``."""
    p = Path(os.fspath(first_input).rstrip("/"))
    return p.with_name(p.name + SUFFIX)


@dataclass
class Saved:
    """What the sidecar held: the last decision per (source, id), and whether the newest ones were exported."""

    decisions: dict[tuple[str, str], str | None] = field(default_factory=dict)
    unexported: set[tuple[str, str]] = field(default_factory=set)  # rows changed since the last export
    bad_lines: int = 0


def read(path: Path) -> Saved:
    """The sidecar's records, last one per row winning; unreadable lines are counted, not fatal."""
    out = Saved()
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError:  # none yet, or unreadable: start without saved decisions (appending says if it cannot write)
        return out
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                out.bad_lines += 1  # a torn last line after a crash
                continue
            if not isinstance(rec, dict):
                out.bad_lines += 1
                continue
            if "exported" in rec:
                out.unexported.clear()
                continue
            source, cid, what = rec.get("source"), rec.get("id"), rec.get("decision")
            if not isinstance(source, str) or not isinstance(cid, str) or what not in ("keep", "drop", None):
                out.bad_lines += 1
                continue
            out.decisions[(source, cid)] = what
            out.unexported.add((source, cid))
    out.decisions = {k: v for k, v in out.decisions.items() if v is not None}
    return out


class DecisionLog:
    """Appends decisions to the sidecar as they are made; ``error`` says why it cannot when it cannot."""

    def __init__(self, path: Path | None, protect: list[str]) -> None:
        self.path = path
        self.error: str | None = None
        self.records = 0
        if path is not None and any(_same(path, p) for p in protect):
            self.error = f"{path} is an input file: decisions are kept in memory only"
            self.path = None

    def append(self, record: dict[str, object]) -> None:
        if self.path is None:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self.error = f"decisions are not saved: cannot write {self.path} ({e.strerror or e})"
            return
        self.error = None
        self.records += 1


def _same(a: Path, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def match(saved: Saved, line_row: Callable[[str], int | None], id_of: Callable[[int], str | None],
          rows_with_id: Callable[[str], list[int]] | None) -> tuple[dict[int, str], list[tuple[str, str]]]:  # fmt: skip
    """Saved decisions onto table rows: by ``file:line`` when the id there agrees, else by id.

    ``rows_with_id`` is None while ids are not all known yet: those records stay pending.
    Returns (row → decision, records still unmatched).
    """
    out: dict[int, str] = {}
    left: list[tuple[str, str]] = []
    for (source, cid), what in saved.decisions.items():
        row = line_row(source)
        if row is not None and id_of(row) == cid and row not in out:
            out[row] = what
        else:
            left.append((source, cid))
    if rows_with_id is None:
        return out, left
    unmatched = []
    for source, cid in left:
        free = [r for r in rows_with_id(cid) if r not in out]
        if free:
            out[free[0]] = saved.decisions[(source, cid)]
        else:
            unmatched.append((source, cid))
    return out, unmatched
