"""The worker side of dedup's reader: parse a JSONL byte range into features, and read rows back by position.

Worker processes fork from the reader after ``STATE`` is set, so they inherit the tables, the
config, the permutations and the --against n-gram table; a task names only a byte range or rows.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from workbench.dedup import minhash as mh
from workbench.dedup.decide import Features, answer_hash, scan_features
from workbench.dedup.views import messages_view
from workbench.records import Message, Reject


@dataclass
class Table:
    """One input table: a JSONL file read by byte range, or rows held in memory (``held``)."""

    name: str
    path: str | None
    fmt: str | None
    mapping: dict[str, str]
    held: list[tuple[Any, list[Message]]] | None = None  # (original value, messages) per row


def strip_line(data: bytes, start: int) -> bytes:
    if start == 0 and data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    return data.rstrip(b"\r\n")


def line_value(name: str, k: int, line: bytes) -> tuple[Any, str | None] | Reject | None:
    """A JSONL line's value (with its text when it was decoded), a Reject, or None for a blank line.
    orjson, when installed, parses the lines it accepts (about 2.5x faster); any line it refuses, or
    that holds a surrogate escape, goes through ``readers.jsonl_value``, so the outcome is the same."""
    if _orjson_loads is not None and b"\\ud" not in line and b"\\uD" not in line:
        try:
            return _orjson_loads(line), None
        except ValueError:
            pass
    from workbench.data.readers import jsonl_value

    return jsonl_value(name, k, line)


try:
    from orjson import loads as _orjson_loads
except ImportError:  # optional: the standard library reads every line the same way, slower
    _orjson_loads = None


def parse_line(data: bytes) -> tuple[Any, str | None]:
    got = line_value("", 0, data)
    assert got is not None and not isinstance(got, Reject), "a row read before reads again"
    return got  # type: ignore[return-value]


def messages_of(t: Table, value: Any) -> list[Message]:
    from workbench.data.ingest import convert

    msgs = convert(t.name, None, None, value, None, t.fmt, t.mapping)
    assert not isinstance(msgs, Reject), "a row read before converts again"
    return msgs


STATE: Any = None  # (tables, cfg, perms, ngram table): set before the pool forks, so workers inherit it


def scan_task(task: tuple[int, int, int]) -> tuple[int, int, int, np.ndarray, np.ndarray, Features, list[Reject]]:
    return scan_range(STATE, task)


def fetch_task(task: Any) -> Any:
    return fetch_rows(STATE[:2], task)


def scan_range(state: Any, task: tuple[int, int, int]) -> tuple[int, int, int, np.ndarray, np.ndarray, Features, list[Reject]]:
    """Rows of bytes [start, end) of a JSONL table: (table, start, lines, line index, byte starts, features, rejects).
    Line numbers are within the range (0-based); the caller adds the lines before it."""
    from workbench.data.ingest import convert

    tables, cfg, perms, ngrams = state
    ti, start, end = task
    t = tables[ti]
    with open(t.path, "rb") as fh:  # type: ignore[arg-type]
        data = os.pread(fh.fileno(), end - start, start)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the range ends with a newline: no line after it
    lens = np.fromiter(map(len, lines), np.int64, len(lines)) + 1
    offs = start + np.concatenate(([0], np.cumsum(lens)[:-1])) if len(lines) else np.zeros(0, np.int64)
    if start == 0 and lines and lines[0].startswith(codecs.BOM_UTF8):
        lines[0] = lines[0][3:]
    keep: list[int] = []
    texts, prompts, answers, length = [], [], [], []
    rejects: list[Reject] = []
    name, fmt, mapping, on = t.name, t.fmt, t.mapping, cfg.on
    for k, line in enumerate(lines):
        if not line or line.isspace():
            continue
        got = line_value(name, k, line)
        if got is None:
            continue
        if type(got) is Reject:
            rejects.append(got)
            continue
        value, text = got  # type: ignore[misc]
        msgs = convert(name, k, None, value, text, fmt, mapping)
        if type(msgs) is Reject:
            rejects.append(msgs if text is not None else replace(msgs, raw=line.decode("utf-8", "replace").rstrip("\r")))
            continue
        keep.append(k)
        texts.append(messages_view(msgs, on))  # type: ignore[arg-type]
        prompts.append(messages_view(msgs, "prompt"))  # type: ignore[arg-type]
        answers.append(answer_hash(messages_view(msgs, "response")))  # type: ignore[arg-type]
        length.append(sum([len(m.content) for m in msgs]))  # type: ignore[union-attr]
    f = scan_features(texts, prompts, answers, np.array(length, np.int64), cfg, perms, ngrams)
    idx = np.array(keep, np.int64)
    return ti, start, len(lines), idx, offs, f, rejects


def fetch_rows(state: Any, task: Any) -> Any:
    """Read rows back: gram sets, texts or ids of the rows in one table (sorted by position)."""
    from workbench.data.ingest import convert
    from workbench.records import conversation_id

    tables, cfg = state
    ti, starts, ends, what, view = task
    t = tables[ti]
    values: list[Any] = []
    msgs: list[list[Message]] = []
    if t.held is not None:
        values = [t.held[int(s)][0] for s in starts]
        msgs = [t.held[int(s)][1] for s in starts]
    else:
        with open(t.path, "rb") as fh:
            fd = fh.fileno()
            for s, e in zip(starts.tolist(), ends.tolist()):
                value, text = parse_line(strip_line(os.pread(fd, e - s, s), s))
                values.append(value)
                msgs.append(convert(t.name, None, None, value, text, t.fmt, t.mapping))  # type: ignore[arg-type]
    if what == "ids":  # view "own": the row's own id field when it has one; else the content hash
        out = []
        for v, m in zip(values, msgs):
            own = v.get("id") if view == "own" and isinstance(v, dict) else None
            out.append(str(own) if isinstance(own, (str, int)) and not isinstance(own, bool) else conversation_id(m))
        return out
    texts = [messages_view(m, view) for m in msgs]
    if what == "texts":
        return texts
    buf, off = mh.pack(texts, nfc=cfg.nfc, casefold=cfg.casefold)
    return mh.gram_sets(buf, off, cfg.ngram, cfg.casefold)


def merge(outs: list[Any], what: str, order: np.ndarray) -> Any:
    """Task outputs (sorted rows) back in the order asked."""
    back = np.empty(len(order), np.int64)
    back[order] = np.arange(len(order))  # position of each asked row in the sorted list
    if what != "grams":
        flat_list = [x for out in outs for x in out]
        return [flat_list[k] for k in back.tolist()]
    flats = [o[0] for o in outs]
    counts = np.concatenate([o[2] for o in outs]) if outs else np.zeros(0, np.int64)
    starts = np.concatenate([o[1][:-1] + base for o, base in zip(outs, np.cumsum([0] + [len(f) for f in flats])[:-1])]) if outs else np.zeros(0, np.int64)
    flat = np.concatenate(flats) if flats else np.zeros(0, np.uint64)
    # reorder: flat stays, each asked row points into it
    st = starts[back].astype(np.int64)
    ct = counts[back].astype(np.int64)
    # the kernels want start bounds of length n + 1 over a contiguous layout: rebuild it in the asked order
    bound = np.zeros(len(ct) + 1, np.int64)
    np.cumsum(ct, out=bound[1:])
    idx = np.repeat(st - bound[:-1], ct) + np.arange(bound[-1])
    return flat[idx], bound, ct


