"""The app's state without the UI: passes, filters, sorting, decisions and undo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.tui.conftest import HERE
from workbench.tui import query
from workbench.tui.session import Session, options


def _session() -> Session:
    s = Session(options([str(HERE / "data" / "small.jsonl")]))
    s.open()
    s.index()
    s.scan()
    s.run_dedup()
    return s


def test_passes_fill_columns_and_findings() -> None:
    s = _session()
    assert s.n == 12
    assert int(s.cols["turns"][8]) == 4 and int(s.cols["chars"][6]) == -1  # row 6 is a reject
    assert s.groups["rejected:malformed_json"].rows == [6]
    assert s.groups["placeholder"].rows == [11]
    assert list(np.flatnonzero(s.cluster)) == [1, 3, 4, 5]


def test_filters_and_sort() -> None:
    s = _session()
    assert list(query.apply(s, query.parse("role:tool"))) == [8]
    assert list(query.apply(s, query.parse("is:reject"))) == [6, 7]
    assert list(query.apply(s, query.parse("code:rejected"))) == [6, 7]
    assert list(query.apply(s, query.parse("is:dup cluster:1"))) == [1, 3]
    assert list(query.apply(s, query.parse("apple"))) == [4, 5]
    q = query.parse("role:robot is:nonsense")
    assert len(q.errors) == 2
    view = query.sort(s, np.arange(12), "chars", True)
    assert int(view[0]) == 9 and set(view[-2:].tolist()) == {6, 7}  # unknown values last


def test_decisions_undo_and_save(tmp_path: Path) -> None:
    s = _session()
    assert not s.is_kept(3) and s.is_kept(1)
    s.decide(3, "keep")
    s.decide(1, "drop")
    assert s.is_kept(3) and not s.is_kept(1)
    assert s.undo() == 1 and s.is_kept(1)
    counts = s.save(tmp_path / "k.jsonl", tmp_path / "r.jsonl")
    assert counts["read"] == 10 and counts["kept"] == 9 and counts["removed"] == 1  # only the near duplicate goes
    assert len((tmp_path / "k.jsonl").read_text().splitlines()) == 9
