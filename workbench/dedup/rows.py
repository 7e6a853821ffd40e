"""The rows `workbench dedup` reads: JSONL files split by byte range over worker processes, other formats in process.

The worker side (parsing a range, reading rows back) is in ``lines``.

A JSONL row never becomes a Python object in the main process: workers parse their byte range
(the same per-line rules and schema adapters as ingest), compute the row's features (``decide``)
and return arrays plus each row's byte range and line number. Later, the few rows a decision needs
again (candidates to verify, conflicting answers, kept rows named in the removed file) are read
back by byte range. So the kept file can be the input's own bytes, and memory stays bounded by
arrays of a few hundred bytes per row. Other inputs (JSON, CSV, Parquet, datasets) are read in
process through ingest's readers and held in memory with their original values.
"""

from __future__ import annotations

import codecs
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from workbench.dedup import lines as ln
from workbench.dedup import minhash as mh
from workbench.dedup.decide import (
    Features,
    GramSets,
    answer_hash,
    concat_features,
    scan_features,
)
from workbench.dedup.lines import Table
from workbench.dedup.views import messages_view
from workbench.records import Conversation, Message, Reject, Source

CHUNK_BYTES = 8 << 20  # a worker's byte range: big enough to amortise a task, small enough to balance
POOL_BYTES = 16 << 20  # below this much JSONL, one process is quicker than starting workers
FETCH_ROWS = 8192  # rows per read-back task


@dataclass
class Rows:
    """Every row read, as arrays (row order = input order), with what it takes to read a row back."""

    tables: list[Table]
    table: np.ndarray  # int32: the row's table
    start: np.ndarray  # int64: byte offset of its line (JSONL) or its index in ``held``
    end: np.ndarray  # int64: byte offset after its line (newline included); -1 for held rows
    line: np.ndarray  # int64: 1-based line (-1: none)
    index: np.ndarray  # int64: 0-based row index for formats without lines (-1: none)
    features: Features
    rejects: list[Reject]
    rows_read: int
    formats: dict[str, str] = field(default_factory=dict)
    pool: Any = None
    n_workers: int = 1
    _files: dict[int, Any] = field(default_factory=dict)

    def _fd(self, t: int) -> int:
        fh = self._files.get(t)
        if fh is None:
            fh = self._files[t] = open(self.tables[t].path, "rb")  # type: ignore[arg-type]  # noqa: SIM115
        return int(fh.fileno())

    def __len__(self) -> int:
        return len(self.table)

    def source(self, i: int) -> Source:
        t = self.tables[int(self.table[i])]
        line, idx = int(self.line[i]), int(self.index[i])
        return Source(t.name, line if line > 0 else None, idx if idx >= 0 else None)

    def raw(self, i: int) -> bytes | None:
        """The row's line as it is in its file (JSONL rows), newline excluded, BOM stripped."""
        ti = int(self.table[i])
        if self.tables[ti].path is None:
            return None
        data = os.pread(self._fd(ti), int(self.end[i] - self.start[i]), int(self.start[i]))
        return ln.strip_line(data, int(self.start[i]))

    def value(self, i: int) -> Any:
        """The row as the user wrote it (a dict)."""
        t = self.tables[int(self.table[i])]
        if t.held is not None:
            return t.held[int(self.start[i])][0]
        got = ln.parse_line(self.raw(i) or b"")
        return got[0]

    def conversation(self, i: int) -> Conversation:
        t = self.tables[int(self.table[i])]
        msgs = t.held[int(self.start[i])][1] if t.held is not None else ln.messages_of(t, ln.parse_line(self.raw(i) or b"")[0])
        from workbench.data import SCHEMAS

        return Conversation.make(msgs, self.source(i), SCHEMAS[t.fmt].meta if t.fmt else None)

    def fetch(self, rows: np.ndarray, what: str, view: str, cfg: Any) -> list[Any]:
        """For ``rows`` (any order): per task, ("grams", view) gram sets, ("texts", view) texts or
        ("ids", "") conversation ids, in the order asked. Read back in the workers when there are any."""
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        tasks = []
        for t in np.unique(self.table[srt]).tolist():
            sel = srt[self.table[srt] == t]
            for lo in range(0, len(sel), FETCH_ROWS):
                part = sel[lo : lo + FETCH_ROWS]
                tasks.append((t, self.start[part], self.end[part], what, view))
        state = (self.tables, cfg)
        far = [k for k, task in enumerate(tasks) if self.pool is not None and self.tables[task[0]].held is None]
        outs: list[Any] = [None] * len(tasks)
        if far:  # JSONL rows are read back by the workers; held rows are here already
            for k, out in zip(far, self.pool.map(ln.fetch_task, [tasks[k] for k in far])):
                outs[k] = out
        for k, task in enumerate(tasks):
            if outs[k] is None:
                outs[k] = ln.fetch_rows(state, task)
        return ln.merge(outs, what, order)


    def check_conflicts(self, groups: list[np.ndarray], cfg: Any) -> list[bool]:
        """``decide.groups_conflict`` for groups of rows, their answers read back in the workers (in
        tasks of about 20,000 rows) when there are any."""
        tasks: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        size = 20_000
        for g in groups:
            if not tasks or size + len(g) > 20_000:
                tasks.append([])
                size = 0
            tasks[-1].append((self.table[g], self.start[g], self.end[g]))
            size += len(g)
        held = {t for t, tb in enumerate(self.tables) if tb.held is not None}
        far = [k for k, task in enumerate(tasks) if self.pool is not None and not any(set(x[0].tolist()) & held for x in task)]
        outs: list[Any] = [None] * len(tasks)
        if far:
            for k, out in zip(far, self.pool.map(ln.conflict_task, [tasks[k] for k in far])):
                outs[k] = out
        for k, task in enumerate(tasks):
            if outs[k] is None:
                outs[k] = ln.check_groups((self.tables, cfg), task)
        return [flag for out in outs for flag in out]


# --- reading -----------------------------------------------------------------------------------


def _chunks(path: str, size: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``size`` bytes, each ending just after a newline (or at the end)."""
    total = os.path.getsize(path)
    start = 0
    with open(path, "rb") as fh:
        while start < total:
            end = min(total, start + size)
            if end < total:
                fh.seek(end)
                tail = fh.readline()
                end += len(tail)
            yield start, end
            start = end


def _detect(t: Table, path: str, forced: str | None) -> str | None:
    from workbench.data.formats import detect, remap
    from workbench.data.readers import DETECT_ROWS, jsonl_value

    if forced:
        return forced
    sample: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for k, data in enumerate(fh):
            if k == 0 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
            got = jsonl_value(t.name, k + 1, data)
            if isinstance(got, tuple) and isinstance(got[0], dict):
                sample.append(remap(got[0], t.mapping) if t.mapping else got[0])
                if len(sample) >= DETECT_ROWS:
                    break
            if k > 10 * DETECT_ROWS + 1000:
                break
    return detect(sample)


def workers_available() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def read(
    inputs: Sequence[str], *, cfg: Any, format: str | None, mapping: Mapping[str, str] | None, ngrams: Any = None,
    workers: int | None = None, on_progress: Callable[[int, int | None], None] | None = None,
) -> Rows:  # fmt: skip
    """Read every input's rows into features (and rejects). The returned Rows holds the worker pool
    (if one was started) until ``close`` is called."""
    from workbench.data.ingest import IngestStream

    stream = IngestStream(list(inputs), format=format, mapping=mapping)  # validates inputs, --format and --map
    mapping = dict(stream.mapping)
    perms = mh.permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    tables: list[Table] = []
    jobs: list[tuple[int, int, int]] = []
    formats: dict[str, str] = {}
    for src in stream.inputs:
        if src.kind == "jsonl":
            t = Table(src.name, str(src.path), None, mapping)
            t.fmt = _detect(t, str(src.path), stream.format)
            formats[src.name] = t.fmt or "unknown"
            tables.append(t)
            jobs += [(len(tables) - 1, s, e) for s, e in _chunks(str(src.path), CHUNK_BYTES)]
        else:
            tables.append(Table(src.name, None, None, mapping, []))  # filled below, one per table it holds
            jobs.append((len(tables) - 1, -1, -1))
    total = sum(e - s for _, s, e in jobs if s >= 0)
    n_workers = workers or workers_available()
    k = mh.kernels()  # load (or build) before forking, so workers inherit the loaded kernels
    use_pool = n_workers > 1 and total >= POOL_BYTES and not k.how.startswith("jit")
    ln.STATE = (tables, cfg, perms, ngrams)
    pool = multiprocessing.get_context("fork").Pool(min(n_workers, 8)) if use_pool else None
    try:
        rows = _gather(stream, tables, jobs, pool, perms, ngrams, cfg, formats, total, on_progress)
        rows.pool, rows.n_workers = pool, min(n_workers, 8) if pool is not None else 1
        return rows
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise


def _gather(stream: Any, tables: list[Table], jobs: list[tuple[int, int, int]], pool: Any, perms: Any, ngrams: Any,
            cfg: Any, formats: dict[str, str], total: int, on_progress: Any) -> Rows:  # fmt: skip
    from workbench.data.readers import _parts

    parts: list[tuple[np.ndarray, ...]] = []
    feats: list[Features] = []
    rejects: list[Reject] = []
    done = 0
    jsonl = [j for j in jobs if j[1] >= 0]
    results = pool.imap(ln.scan_task, jsonl) if pool is not None else (ln.scan_range(ln.STATE, j) for j in jsonl)
    lines_before: dict[int, int] = {}
    by_job = iter(results)
    for ti, s, e in jobs:
        if s >= 0:
            _, _, n_lines, idx, offs, f, rej = next(by_job)
            base = lines_before.get(ti, 0)
            lines_before[ti] = base + n_lines
            ends = np.append(offs[1:], e)
            parts.append((np.full(len(idx), ti, np.int32), offs[idx], ends[idx], base + 1 + idx, np.full(len(idx), -1)))
            feats.append(f)
            rejects += [replace(r, line=base + 1 + int(r.line)) for r in rej]  # type: ignore[arg-type]
            done += e - s
            if on_progress:
                on_progress(done, total)
            continue
        src = stream.inputs[ti]
        first = True
        for name, items in _parts(src, lambda _: None, tables[ti].mapping):
            if not first:  # a DatasetDict: one table per split
                tables.append(Table(name, None, None, tables[ti].mapping, []))
                ti = len(tables) - 1
            first = False
            tables[ti].name = name
            held_rows, held_rej = _hold(tables[ti], items, stream.format)
            formats[name] = tables[ti].fmt or "unknown"
            rejects += held_rej
            held = tables[ti].held or []
            if held:
                f = _held_features(held, held_rows, cfg, perms, ngrams)
                feats.append(f)
                n = len(held)
                parts.append((np.full(n, ti, np.int32), np.arange(n, dtype=np.int64), np.full(n, -1),
                              np.array([r[0] for r in held_rows], np.int64), np.array([r[1] for r in held_rows], np.int64)))  # fmt: skip
    if not feats:
        feats.append(scan_features([], [], [], np.zeros(0, np.int64), cfg, perms, ngrams))
    cat = np.concatenate
    cols = [cat([p[k] for p in parts]) if parts else np.zeros(0, np.int64) for k in range(5)]
    rows = Rows(tables, cols[0].astype(np.int32), cols[1].astype(np.int64), cols[2].astype(np.int64),
                cols[3].astype(np.int64), cols[4].astype(np.int64), concat_features(feats), rejects,
                len(cols[0]) + len(rejects), formats)  # fmt: skip
    return rows


def _hold(t: Table, items: Iterator[Any], forced: str | None) -> tuple[list[tuple[int, int]], list[Reject]]:
    """Read a non-JSONL table into memory: (line or -1, row or -1) per kept row, and its rejects."""
    from itertools import chain

    from workbench.data.formats import detect, remap
    from workbench.data.ingest import convert
    from workbench.data.readers import DETECT_ROWS

    head: list[Any] = []
    fmt = forced
    if fmt is None:
        sample = []
        for item in items:
            head.append(item)
            if type(item) is tuple and isinstance(item[2], dict):
                sample.append(remap(item[2], t.mapping) if t.mapping else item[2])
                if len(sample) >= DETECT_ROWS:
                    break
        fmt = detect(sample)
    t.fmt = fmt
    where: list[tuple[int, int]] = []
    rejects: list[Reject] = []
    assert t.held is not None
    for item in chain(head, items):
        if type(item) is Reject:
            rejects.append(item)
            continue
        line, row, value, raw = item
        msgs = convert(t.name, line, row, value, raw, fmt, t.mapping)
        if type(msgs) is Reject:
            rejects.append(msgs)
            continue
        t.held.append((value, msgs))  # type: ignore[arg-type]
        where.append((line if line is not None else -1, row if row is not None else -1))
    return where, rejects


def _held_features(held: list[tuple[Any, list[Message]]], where: Any, cfg: Any, perms: Any, ngrams: Any) -> Features:
    parts = []
    for lo in range(0, len(held), 65536):
        msgs = [m for _, m in held[lo : lo + 65536]]
        parts.append(scan_features([messages_view(m, cfg.on) for m in msgs], [messages_view(m, "prompt") for m in msgs],
                                   [answer_hash(messages_view(m, "response")) for m in msgs],
                                   np.array([sum(len(x.content) for x in m) for m in msgs], np.int64), cfg, perms, ngrams))  # fmt: skip
    return concat_features(parts)


def close(rows: Rows) -> None:
    """Stop the worker pool, if any, and close the files read back."""
    for fh in rows._files.values():
        fh.close()
    rows._files.clear()
    if rows.pool is not None:
        rows.pool.close()
        rows.pool.join()
        rows.pool = None


def grams_fetcher(rows: Rows, cfg: Any) -> Callable[[np.ndarray], GramSets]:
    return lambda r: rows.fetch(r, "grams", cfg.on, cfg)  # type: ignore[no-any-return]


def conflicts_checker(rows: Rows, cfg: Any) -> Callable[[list[np.ndarray]], list[bool]]:
    return lambda groups: rows.check_conflicts(groups, cfg)
