"""The dataset filter: ``text role:tool code:CODE is:long|no-eos|zero|dup|reject|flagged|dropped cluster:N``, and sorting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from workbench.tui.session import (
    FLAGGED,
    NO_EOS,
    NUMERIC,
    OVER,
    REJECT,
    RENDER_ERROR,
    ROLE_BIT,
    ZERO,
    Session,
)

IS = {
    "long": OVER, "over": OVER, "no-eos": NO_EOS, "noeos": NO_EOS, "zero": ZERO, "reject": REJECT,
    "rejected": REJECT, "error": RENDER_ERROR, "flagged": FLAGGED,
}  # fmt: skip
HELP = "text  role:tool  code:CODE  is:long|no-eos|zero|dup|reject|flagged|dropped  cluster:N"


@dataclass
class Query:
    text: str = ""
    roles: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    flags: int = 0
    dup: bool = False
    dropped: bool = False
    cluster: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.text or self.roles or self.codes or self.flags or self.dup or self.dropped or self.cluster)


def parse(s: str) -> Query:
    """Words with a known ``key:`` prefix are conditions; the rest is one substring to find."""
    q = Query()
    words = []
    for word in s.split():
        key, sep, value = word.partition(":")
        key = key.lower()
        if not sep or key not in ("role", "code", "finding", "is", "cluster"):
            words.append(word)
            continue
        if key == "role":
            if value.lower() in ROLE_BIT:
                q.roles.append(value.lower())
            else:
                q.errors.append(f"role:{value}? use {', '.join(ROLE_BIT)}")
        elif key in ("code", "finding"):
            q.codes.append(value)
        elif key == "cluster":
            try:
                q.cluster = int(value)
            except ValueError:
                q.errors.append(f"cluster:{value}? give a number")
        elif value.lower() in ("dup", "duplicate", "duplicates"):
            q.dup = True
        elif value.lower() == "dropped":
            q.dropped = True
        elif value.lower() in IS:
            q.flags |= IS[value.lower()]
        else:
            q.errors.append(f"is:{value}? use long, no-eos, zero, dup, reject, error, flagged, dropped")
    q.text = " ".join(words)
    return q


def apply(session: Session, q: Query, stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Table rows matching every condition of ``q``, in input order."""
    n = len(session.flags) if len(session.flags) else session.n
    mask = np.ones(n, dtype=bool)
    if q.flags and len(session.flags):
        mask &= (session.flags[:n] & q.flags) == q.flags
    for role in q.roles:
        mask &= (session.roles[:n] & ROLE_BIT[role]) != 0
    if q.dup:
        mask &= session.cluster[:n] > 0
    if q.cluster is not None:
        mask &= session.cluster[:n] == q.cluster
    if q.codes:
        keep = np.zeros(n, dtype=bool)
        for code in q.codes:
            for name, g in list(session.groups.items()):
                if name == code or name.startswith(code):
                    rows = np.asarray(list(g.rows), dtype=np.int64)
                    keep[rows[rows < n]] = True
        mask &= keep
    if q.dropped:
        drop = np.zeros(n, dtype=bool)
        for r in list(session.decisions):
            if r < n and not session.is_kept(r):
                drop[r] = True
        mask &= drop
    if q.text and session.rows is not None:
        hits = session.rows.search(q.text, stop=stop)
        found = np.zeros(n, dtype=bool)
        found[hits[hits < n]] = True
        mask &= found
    return np.flatnonzero(mask).astype(np.int64)


def sort(session: Session, view: np.ndarray, column: str | None, descending: bool) -> np.ndarray:
    """``view`` ordered by a numeric column (not-yet-known values last), or by findings count; stable."""
    if column is None or column == "row":
        out = np.sort(view)
        return out[::-1] if descending else out
    if column in NUMERIC:
        values = session.cols[column][view]
    elif column == "findings":
        values = np.fromiter((len(session.codes.get(int(r), ())) for r in view), dtype=np.int64, count=len(view))
    elif column == "cluster":
        values = session.cluster[view].astype(np.int64)
        values[values == 0] = -1
    else:
        return view
    known = values >= 0
    key = np.where(known, -values if descending else values, np.iinfo(np.int64).max)
    return view[np.argsort(key, kind="stable")]
