"""The app's state without the UI: passes, filters, sorting, decisions and their sidecar, finding rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.tui.conftest import HERE
from workbench.records import Finding
from workbench.tui import clusters, decisions, query
from workbench.tui.session import Session, options


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.jsonl"
    shutil.copy(HERE / "data" / "small.jsonl", path)
    return path


def _session(path: Path, dedup: bool = True) -> Session:
    s = Session(options([str(path)]))
    s.open()
    s.index()
    s.scan()
    if dedup:
        s.run_dedup()
    return s


def test_passes_fill_columns_and_findings(small: Path) -> None:
    s = _session(small)
    assert s.n == 12
    assert int(s.cols["turns"][8]) == 4 and int(s.cols["chars"][6]) == -1  # row 6 is a reject
    assert s.groups["rejected:malformed_json"].rows == [6]
    assert s.groups["placeholder"].rows == [11]
    assert list(np.flatnonzero(s.cluster)) == [1, 3, 4, 5]
    assert s.codes_of(3) == ["duplicate:exact"] and s.codes_of(5) == ["duplicate:near"]
    assert s.ids[0].decode() == s.item(0).id  # content ids are known for search once scanned


def test_filters_negation_severity_and_sort(small: Path) -> None:
    s = _session(small)
    every = set(range(12))
    assert list(query.apply(s, query.parse("role:tool"))) == [8]
    assert list(query.apply(s, query.parse("is:reject"))) == [6, 7]
    assert list(query.apply(s, query.parse("code:rejected"))) == [6, 7]
    assert list(query.apply(s, query.parse("is:dup cluster:1"))) == [1, 3]
    assert list(query.apply(s, query.parse("apple"))) == [4, 5]
    assert set(query.apply(s, query.parse("-code:rejected"))) == every - {6, 7}
    assert list(query.apply(s, query.parse("apple -is:dup"))) == []
    # is:error is every row with an error finding (rejects here), not only template render errors
    assert list(query.apply(s, query.parse("is:error"))) == [6, 7]
    assert set(query.apply(s, query.parse("is:warning"))) >= {3, 5}  # dedup removals are warnings
    q = query.parse("role:robot is:nonsense")
    assert len(q.errors) == 2
    view = query.sort(s, np.arange(12), "chars", True)
    assert int(view[0]) == 9 and set(view[-2:].tolist()) == {6, 7}  # unknown values last


def test_ids_and_lines_find_rows(small: Path) -> None:
    s = _session(small, dedup=False)
    cid = s.item(9).id
    assert list(query.apply(s, query.parse(cid))) == [9]  # an id quoted in a finding is searchable
    assert list(query.apply(s, query.parse(f"id:{cid[:8]}"))) == [9]
    assert s.find("small.jsonl:10") == [9] and s.find(":10") == [9] and s.find(f"{small}:10") == [9]
    assert s.find("other.jsonl:10") == [] and s.find(":7") == [6]


def test_own_id_field_is_shown_and_searchable(tmp_path: Path) -> None:
    path = tmp_path / "own.jsonl"
    rows = [{"id": f"ex-{i}", "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = _session(path, dedup=False)
    assert s.rows.own_id(3) == "ex-3"
    assert list(query.apply(s, query.parse("id:ex-3"))) == [3]
    assert list(query.apply(s, query.parse("-id:ex-3"))) == [0, 1, 2, 4]


def test_decisions_undo_and_save(small: Path, tmp_path: Path) -> None:
    s = _session(small)
    assert not s.is_kept(3) and s.is_kept(1)
    s.decide(3, "keep")
    s.decide(1, "drop")
    assert s.is_kept(3) and not s.is_kept(1)
    assert s.undo() == 1 and s.is_kept(1)
    assert s.unexported == 3
    counts = s.save(tmp_path / "k.jsonl", tmp_path / "r.jsonl")
    assert counts["read"] == 10 and counts["kept"] == 9 and counts["removed"] == 1  # only the near duplicate goes
    assert len((tmp_path / "k.jsonl").read_text().splitlines()) == 9
    assert s.unexported == 0


def test_decisions_persist_in_a_sidecar_and_find_moved_rows(small: Path) -> None:
    before = small.read_bytes()
    s = _session(small)
    s.decide(5, "keep")
    s.decide(9, "drop")
    s.decide(10, "drop")
    s.undo()
    sidecar = decisions.sidecar_path(small)
    assert sidecar.name == "small.jsonl.workbench-decisions.jsonl" and sidecar.exists()
    assert small.read_bytes() == before  # the data file is never written
    again = _session(small)
    assert again.decisions == {5: "keep", 9: "drop"} and again.unexported == 3  # rows changed since the last export

    # the file is edited: two lines inserted at the top; rows are found again by their content id
    lines = small.read_text().splitlines(keepends=True)
    extra = json.dumps({"messages": [{"role": "user", "content": "new"}, {"role": "assistant", "content": "row"}]}) + "\n"
    small.write_text(extra + extra.replace("new", "newer") + "".join(lines))
    moved = _session(small)
    assert moved.decisions == {7: "keep", 11: "drop"} and moved.unmatched == []
    # a torn last line (a crash mid-write) is skipped, not fatal
    with open(sidecar, "a") as fh:
        fh.write('{"source": "small.jsonl:1", "id"')
    assert _session(small).decisions == {7: "keep", 11: "drop"}


def test_sidecar_that_cannot_be_written_is_said(small: Path, tmp_path: Path) -> None:
    s = _session(small)
    s.log = decisions.DecisionLog(tmp_path / "missing-dir" / "x.jsonl", [])
    s.decide(1, "drop")
    assert s.decisions == {1: "drop"} and s.log.error and "cannot write" in s.log.error


def test_conflicting_answers_rows_however_dedup_names_them(tmp_path: Path) -> None:
    """The dedup result has named conflicting rows by position, by file:line and by id; all land on table rows."""
    path = tmp_path / "c.jsonl"
    rows = [("What is 2+2?", "Four, since two and two make four in ordinary arithmetic."),
            ("Name a fruit.", "Apple."),
            ("What is 2+2?", "It is 22 if you concatenate the digits as strings in most languages."),
            ("Name a fruit.", "A banana is a long yellow fruit that monkeys like to eat a lot.")]  # fmt: skip
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for q, a in rows))
    s = _session(path)
    assert s.groups["conflicting_answers"].rows == [0, 1, 2, 3]
    assert s.codes_of(2) == ["conflicting_answers"]
    tr = np.arange(4)
    by_source = Finding("conflicting_answers", "warning", "m", [], None, {"groups": [[f"{path}:1", f"{path}:3"]]})
    by_row = Finding("conflicting_answers", "warning", "m", [], None, {"groups": [[1, 3]]})
    by_id = Finding("conflicting_answers", "warning", "m", [s.item(0).id], None, {})
    assert clusters.conflict_groups(by_source, tr, s.find) == [[0, 2]]
    assert clusters.conflict_groups(by_row, tr, s.find) == [[1, 3]]
    assert clusters.conflict_groups(by_id, tr, s.find) == [[0]]


def test_template_kwargs_reach_every_render_of_the_session(tmp_path: Path, fixtures_dir: Path) -> None:
    # Qwen3.5's template opens a <think> block in the generation prompt unless enable_thinking is false:
    # with the kwargs the session's checks agree with `workbench check --template-kwargs`, without them they warn.
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                     {"role": "assistant", "content": f"It is {2 * i}."}]}) + "\n" for i in range(4)))  # fmt: skip
    model = tmp_path / "qwen3"
    shutil.copytree(fixtures_dir / "tokenizers" / "qwen3", model)
    template = str(Path(__file__).parent.parent / "data" / "templates" / "qwen3.5.jinja")
    found = {}
    for kwargs in ({}, {"enable_thinking": False}):
        s = Session(options([str(rows)], model=str(model), template=template, template_kwargs=kwargs))
        s.open()
        s.index()
        s.scan()
        s.load_tokenizer()
        s.tokenise()
        assert s.run_checks()
        found[bool(kwargs)] = set(s.groups)
        if kwargs:
            from workbench.template.chat import render, template_kwargs_of

            assert template_kwargs_of(s.tokenizer) == kwargs
            assert render(s.tokenizer, s.item(0), add_generation_prompt=False).count("<think>") == 1  # the empty block, once
    assert "generation_prompt_opens_reasoning" in found[False]
    assert "generation_prompt_opens_reasoning" not in found[True]


def test_tui_template_kwargs_need_a_model_and_valid_json(tmp_path: Path) -> None:
    import subprocess
    import sys

    rows = tmp_path / "rows.jsonl"
    shutil.copy(HERE / "data" / "small.jsonl", rows)
    for args in (["--template-kwargs", '{"enable_thinking": false}'], ["--model", "tiny:chatml", "--template-kwargs", "{not json"]):
        res = subprocess.run([sys.executable, "-m", "workbench", "tui", str(rows), *args], capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 2 and "--template-kwargs" in res.stderr and "Traceback" not in res.stderr, res.stderr
