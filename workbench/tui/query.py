"""The dataset filter: ``text role: code: is: cluster: id:`` conditions, each negated by a leading ``-``, and sorting.

Conditions on columns are numpy masks (instant at a million rows); free text is a vectorised scan
of the raw rows (`RowIndex.search_chunks`) that streams its hits, so ``run`` yields growing views.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from workbench.tui.session import (
    ERROR,
    FLAGGED,
    NO_EOS,
    NUMERIC,
    OVER,
    REJECT,
    RENDER_ERROR,
    ROLE_BIT,
    WARNING,
    ZERO,
    Session,
)

IS = {
    "long": OVER, "over": OVER, "no-eos": NO_EOS, "noeos": NO_EOS, "zero": ZERO, "reject": REJECT,
    "rejected": REJECT, "render-error": RENDER_ERROR, "error": ERROR, "errors": ERROR, "warning": WARNING,
    "warnings": WARNING, "flagged": FLAGGED,
}  # fmt: skip
IS_NAMES = "long, no-eos, zero, dup, reject, error, warning, render-error, flagged, dropped, kept"
HELP = "text  role:tool  code:CODE  is:error|warning|long|no-eos|zero|dup|reject|flagged|dropped  cluster:N  id:ID  (-key:value negates)"
KEYS = ("role", "code", "finding", "is", "cluster", "id")
HEX = re.compile(r"[0-9a-fA-F]{6,16}")


@dataclass
class Cond:
    key: str
    value: str
    negate: bool = False


@dataclass
class Query:
    text: str = ""
    conds: list[Cond] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.text or self.conds)


def parse(s: str) -> Query:
    """Words with a known ``key:`` prefix (``-key:`` to negate) are conditions; the rest is one substring to find."""
    q = Query()
    words = []
    for word in s.split():
        neg = word.startswith("-") and len(word) > 1
        key, sep, value = word[1 if neg else 0 :].partition(":")
        key = key.lower()
        if not sep or key not in KEYS:
            words.append(word)
            continue
        key = "code" if key == "finding" else key
        v = value.lower()
        if key == "role" and v not in ROLE_BIT:
            q.errors.append(f"role:{value}? use {', '.join(ROLE_BIT)}")
        elif key == "cluster" and not v.isdigit():
            q.errors.append(f"cluster:{value}? give a number")
        elif key == "is" and v not in IS and v not in ("dup", "duplicate", "duplicates", "dropped", "kept"):
            q.errors.append(f"is:{value}? use {IS_NAMES}")
        elif not value:
            q.errors.append(f"{key}:? give a value")
        else:
            q.conds.append(Cond(key, value if key in ("code", "id") else v, neg))
    q.text = " ".join(words)
    return q


def _rows_mask(n: int, rows: object) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    a = np.asarray(rows, dtype=np.int64)
    out[a[(a >= 0) & (a < n)]] = True
    return out


def flagged(session: Session, n: int, bits: int = FLAGGED) -> np.ndarray:
    """Rows with a finding (``bits``: any, or of a severity); rows dedup removes count as warnings."""
    mask = (session.flags[:n] & bits) != 0
    d = session.dupes
    if d is not None and bits & (FLAGGED | WARNING):
        mask |= d.reason[:n] > 0
    return mask


def _cond(session: Session, c: Cond, n: int) -> np.ndarray:
    s = session
    if c.key == "role":
        return (s.roles[:n] & ROLE_BIT[c.value]) != 0
    if c.key == "cluster":
        return s.cluster[:n] == int(c.value)
    if c.key == "code":
        keep = np.zeros(n, dtype=bool)
        for name, g in list(s.groups.items()):
            if name == c.value or name.startswith(c.value):
                keep |= _rows_mask(n, g.rows)
        return keep
    if c.key == "id":  # workbench's content id (a prefix will do), or the row's own id field
        keep = _rows_mask(n, s.rows_with_id(c.value.lower())) if HEX.fullmatch(c.value) else np.zeros(n, bool)
        search = getattr(s.rows, "search_regex", None)
        if search is not None:
            keep |= _rows_mask(n, search(r"\"_?id\"\s*:\s*\"?" + re.escape(c.value) + r"[\"},\s]"))
        return keep
    v = c.value
    if v in ("dup", "duplicate", "duplicates"):
        return s.cluster[:n] > 0
    if v in ("dropped", "kept"):
        kept = np.ones(n, dtype=bool)
        kept &= (s.flags[:n] & REJECT) == 0
        if s.dupes is not None:
            kept &= s.dupes.reason[:n] == 0
        for r, d in list(s.decisions.items()):
            if r < n:
                kept[r] = d == "keep"
        return kept if v == "kept" else ~kept
    bits = IS[v]
    if bits in (FLAGGED, ERROR, WARNING):
        return flagged(s, n, bits)
    return (s.flags[:n] & bits) == bits


def base_mask(session: Session, q: Query) -> np.ndarray:
    """Every condition but the free text, as one boolean mask over the rows."""
    n = len(session.flags) if len(session.flags) else session.n
    mask = np.ones(n, dtype=bool)
    for c in q.conds:
        m = _cond(session, c, n)
        mask &= ~m if c.negate else m
    return mask


def run(session: Session, q: Query, stop: Callable[[], bool] | None = None) -> Iterator[tuple[np.ndarray, float]]:
    """``(matching rows so far, share of rows searched)``: once for column conditions, per slice for text."""
    mask = base_mask(session, q)
    n = len(mask)
    if not q.text or session.rows is None:
        yield np.flatnonzero(mask).astype(np.int64), 1.0
        return
    hit = session.search_cache
    if hit is not None and hit[0] == q.text and len(hit[1]) == n:  # a pass finished: the text matches are the same
        yield np.flatnonzero(mask & hit[1]).astype(np.int64), 1.0
        return
    found = np.zeros(n, dtype=bool)
    if HEX.fullmatch(q.text):  # an id quoted in a finding: workbench's content ids are not in the file
        found |= _rows_mask(n, session.rows_with_id(q.text.lower()))
    total = max(len(session.rows), 1)
    for hits, done in session.rows.search_chunks(q.text, stop=stop):
        found[hits[hits < n]] = True
        yield np.flatnonzero(mask & found).astype(np.int64), min(done / total, 1.0)
        if stop is not None and stop():
            return
    if session.scanned or not HEX.fullmatch(q.text):  # ids are complete once every row is read
        session.search_cache = (q.text, found)
    yield np.flatnonzero(mask & found).astype(np.int64), 1.0


def apply(session: Session, q: Query, stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Table rows matching every condition of ``q``, in input order."""
    view = np.empty(0, dtype=np.int64)
    for view, _ in run(session, q, stop):
        pass
    return view


def sort(session: Session, view: np.ndarray, column: str | None, descending: bool) -> np.ndarray:
    """``view`` ordered by a numeric column (not-yet-known values last), or by findings count; stable."""
    if column is None or column == "row":
        out = np.sort(view)
        return out[::-1] if descending else out
    if column in NUMERIC:
        values = session.cols[column][view]
    elif column == "findings":
        values = np.fromiter((len(session.codes.get(int(r), ())) for r in view), dtype=np.int64, count=len(view))
        if session.dupes is not None:
            values += session.dupes.reason[view] > 0
    elif column == "cluster":
        values = session.cluster[view].astype(np.int64)
        values[values == 0] = -1
    else:
        return view
    known = values >= 0
    key = np.where(known, -values if descending else values, np.iinfo(np.int64).max)
    return view[np.argsort(key, kind="stable")]
