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

from workbench.data.formats import ROLE_ALIASES
from workbench.dedup import minhash as mh
from workbench.dedup.decide import Features, answer_hash, scan_features
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


_SIDE = {"user": 1, "tool": 1, "assistant": 2, "system": 0}  # 1 prompt side, 2 response side, 0 neither


def sides(value: Any, t: Table) -> tuple[list[str], list[str], list[str], int] | None:
    """The turns of a plain ``messages`` row split by side (all compared turns, prompt, response) and
    the characters in all turns, without building messages; None whenever the row is anything but
    plain (another schema, --map, an unusual role or turn), so the schema adapter decides it."""
    if t.fmt != "messages" or t.mapping or type(value) is not dict:
        return None
    turns = value.get("messages")
    if type(turns) is not list or not turns:
        return None
    both: list[str] = []
    prompt: list[str] = []
    response: list[str] = []
    length = 0
    roles = ROLE_ALIASES
    for turn in turns:
        if type(turn) is not dict:
            return None
        role, content = turn.get("role"), turn.get("content")
        if type(role) is not str or type(content) is not str:
            return None
        r = roles.get(role)
        if r is None or (r != "system" and (not content or content.isspace())):
            return None
        length += len(content)
        side = _SIDE[r]
        if side:
            both.append(content)
            (prompt if side == 1 else response).append(content)
    return both, prompt, response, length


def _views(msgs: list[Message]) -> tuple[list[str], list[str], list[str], int]:
    both, prompt, response, length = [], [], [], 0
    for m in msgs:
        length += len(m.content)
        side = _SIDE[m.role]
        if side:
            both.append(m.content)
            (prompt if side == 1 else response).append(m.content)
    return both, prompt, response, length


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
    name, fmt, mapping, on = t.name, t.fmt, t.mapping, cfg.on  # noqa: F841
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
        split = sides(value, t)
        if split is None:
            msgs = convert(name, k, None, value, text, fmt, mapping)
            if type(msgs) is Reject:
                rejects.append(msgs if text is not None else replace(msgs, raw=line.decode("utf-8", "replace").rstrip("\r")))
                continue
            split = _views(msgs)  # type: ignore[arg-type]
        both, prompt, response, n = split
        keep.append(k)
        texts.append("\n".join(both if on == "conversation" else prompt if on == "prompt" else response))
        prompts.append("\n".join(prompt))
        answers.append(answer_hash("\n".join(response)))
        length.append(n)
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
    if t.held is not None:
        rows = [(t.held[int(s)][0], None, t.held[int(s)][1]) for s in starts]
    else:
        rows = []
        with open(t.path, "rb") as fh:
            fd = fh.fileno()
            for s, e in zip(starts.tolist(), ends.tolist()):
                value, text = parse_line(strip_line(os.pread(fd, e - s, s), s))
                rows.append((value, text, None))

    def msgs_of(value: Any, text: str | None, msgs: Any) -> list[Message]:
        return msgs if msgs is not None else convert(t.name, None, None, value, text, t.fmt, t.mapping)  # type: ignore[no-any-return]

    if what == "ids":  # view "own": the row's own id field when it has one; else the content hash
        out = []
        for value, text, msgs in rows:
            own = value.get("id") if view == "own" and isinstance(value, dict) else None
            ok = isinstance(own, (str, int)) and not isinstance(own, bool)
            out.append(own if ok else conversation_id(msgs_of(value, text, msgs)))  # the id as the user typed it
        return out
    pick = {"conversation": 0, "prompt": 1, "response": 2}[view]
    texts = []
    for value, text, msgs in rows:
        split = sides(value, t) if msgs is None else None
        texts.append("\n".join((split or _views(msgs_of(value, text, msgs)))[pick]))  # type: ignore[index]
    if what == "texts":
        return texts
    buf, off = mh.pack(texts, nfc=cfg.nfc, casefold=cfg.casefold)
    return mh.gram_sets(buf, off, cfg.ngram, cfg.casefold)


def conflict_task(task: Any) -> list[bool]:
    return check_groups(STATE[:2], task)


def check_groups(state: Any, task: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[bool]:
    """``decide.groups_conflict`` over groups of rows given as (tables, starts, ends): their answers read back."""
    from workbench.dedup.decide import groups_conflict

    tables, cfg = state
    files: dict[int, Any] = {}
    answers = []
    try:
        for tbl, starts, ends in task:
            mine = []
            for ti, s, e in zip(tbl.tolist(), starts.tolist(), ends.tolist()):
                t = tables[ti]
                if t.held is not None:
                    mine.append("\n".join(_views(t.held[s][1])[2]))
                    continue
                if ti not in files:
                    files[ti] = open(t.path, "rb")  # noqa: SIM115
                value, text = parse_line(strip_line(os.pread(files[ti].fileno(), e - s, s), s))
                split = sides(value, t) or _views(messages_of(t, value))
                mine.append("\n".join(split[2]))
            answers.append(mine)
    finally:
        for fh in files.values():
            fh.close()
    return groups_conflict(answers, cfg)


def merge(outs: list[Any], what: str, order: np.ndarray) -> Any:
    """Task outputs (sorted rows) back in the order asked. Gram sets stay where they are: row k's set
    is flat[start[k] : start[k] + count[k]] (``start`` has one more entry, the end of ``flat``)."""
    back = np.empty(len(order), np.int64)
    back[order] = np.arange(len(order))  # position of each asked row in the sorted list
    if what != "grams":
        flat_list = [x for out in outs for x in out]
        return [flat_list[k] for k in back.tolist()]
    sizes = [len(o[0]) for o in outs]
    bases = np.cumsum([0, *sizes])[:-1]
    starts = np.concatenate([o[1][:-1] + b for o, b in zip(outs, bases)]) if outs else np.zeros(0, np.int64)
    counts = np.concatenate([o[2] for o in outs]) if outs else np.zeros(0, np.int64)
    flat = np.concatenate([o[0] for o in outs]) if outs else np.zeros(0, np.uint64)
    outs.clear()  # the parts' memory goes as soon as the one flat array exists
    return flat, np.append(starts[back], len(flat)).astype(np.int64), counts[back].astype(np.int64)
