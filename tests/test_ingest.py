"""Readers, rejects with reasons, counts that add up, atomic output, and the `ingest` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.data import ingest
from workbench.errors import UsageError, WorkbenchError
from workbench.data.formats import from_canonical
from workbench.records import Conversation, Message, Reject

DATA = Path(__file__).resolve().parent / "data" / "ingest"

CHATS = [
    (Message("system", "Be kind."), Message("user", "Hi"), Message("assistant", "Hello!")),
    (Message("user", "2+2?"), Message("assistant", "4"), Message("user", "3+3?"), Message("assistant", "6")),
]
PAIRS = [(Message("user", "Name a colour."), Message("assistant", "Blue.")), (Message("user", "1+1?"), Message("assistant", "2"))]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def messages_of(data: ingest.Ingested) -> list[tuple[Message, ...]]:
    return [c.messages for c in data.conversations]


# --- readers --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ingest.FORMATS)
def test_each_schema_is_detected_and_read(tmp_path: Path, fmt: str) -> None:
    convs = {"messages": CHATS, "sharegpt": CHATS, "text": [(Message("assistant", "raw text"),)]}.get(fmt, PAIRS)
    path = write_jsonl(tmp_path / f"{fmt}.jsonl", [from_canonical(m, fmt) for m in convs])
    data = ingest.load(path)
    assert data.formats == {str(path): fmt}
    assert messages_of(data) == list(convs)
    assert [c.source.line for c in data.conversations] == list(range(1, len(convs) + 1))


def test_sharegpt_speaker_variants(tests_data: Path) -> None:
    data = ingest.load(DATA / "sharegpt.jsonl")
    assert not data.rejects
    assert [[m.role for m in c.messages] for c in data.conversations] == [
        ["system", "user", "assistant"],
        ["user", "assistant", "user", "assistant"],
        ["system", "user", "assistant", "tool", "assistant"],
    ]


def test_jsonl_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    rows = [from_canonical(m, "messages") for m in CHATS]
    body = b"\xef\xbb\xbf" + json.dumps(rows[0]).encode() + b"\r\n\r\n" + json.dumps(rows[1]).encode() + b"\r\n"
    (tmp_path / "a.jsonl").write_bytes(body)
    data = ingest.load(tmp_path / "a.jsonl")
    assert messages_of(data) == CHATS
    assert [c.source.line for c in data.conversations] == [1, 3]
    assert data.rows_read == 2 and not data.rejects


def test_json_array_with_alpaca_no_input_markers() -> None:
    data = ingest.load(DATA / "alpaca.json")
    assert data.formats == {str(DATA / "alpaca.json"): "alpaca"}
    users = [c.messages[-2].content for c in data.conversations]
    assert users == ["Name a colour.", "Translate.\n\nbonjour", "Say hi.", "Count to two."]
    assert data.conversations[3].messages[0] == Message("system", "Be brief.")
    assert [c.source.row for c in data.conversations] == [0, 1, 2, 3]


def test_json_object_holding_one_list() -> None:
    data = ingest.load(DATA / "wrapped.json")
    assert data.formats[str(DATA / "wrapped.json")] == "query_response"
    assert len(data.conversations) == 2


def test_json_object_that_is_one_row_and_jsonl_named_json(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(from_canonical(CHATS[0], "messages")))
    assert messages_of(ingest.load(one)) == [CHATS[0]]
    lines = write_jsonl(tmp_path / "lines.json", [from_canonical(m, "messages") for m in CHATS])
    assert messages_of(ingest.load(lines)) == CHATS


def test_json_object_with_two_lists_is_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "two.json"
    p.write_text(json.dumps({"a": [{"text": "x"}], "b": [{"text": "y"}]}))
    with pytest.raises(WorkbenchError, match="two.json"):
        ingest.load(p)


def test_csv_with_multiline_cells_and_line_numbers() -> None:
    data = ingest.load(DATA / "qa.csv")
    assert data.formats == {str(DATA / "qa.csv"): "question_answer"}
    assert [c.source.line for c in data.conversations] == [2, 3, 5]
    assert data.conversations[1].messages[1].content == "yes,\r\nreally"


def test_csv_bad_bytes_and_ragged_rows_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_bytes(b"question,answer\nok?,yes\ncaf\xe9?,no\nx,y,z\n")
    data = ingest.load(p)
    assert len(data.conversations) == 1
    assert [(r.reason, r.line) for r in data.rejects] == [("invalid_utf8", 3), ("malformed_csv", 4)]


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [from_canonical(m, "sharegpt") for m in CHATS]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s.parquet")
    data = ingest.load(tmp_path / "s.parquet")
    assert data.formats == {str(tmp_path / "s.parquet"): "sharegpt"}
    assert messages_of(data) == CHATS


def test_save_to_disk_dataset_and_dataset_dict(tmp_path: Path) -> None:
    import datasets

    rows = [from_canonical(m, "question_answer") for m in PAIRS]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    assert messages_of(ingest.load(tmp_path / "one")) == PAIRS
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:1])})
    dd.save_to_disk(str(tmp_path / "dd"))
    data = ingest.load(tmp_path / "dd")
    assert data.files == [f"{tmp_path / 'dd'}/train", f"{tmp_path / 'dd'}/test"]
    assert len(data.conversations) == 3 and data.conversations[2].source.row == 0


def test_load_dataset_on_a_local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # keep ~/.cache clean
    folder = tmp_path / "raw"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", [from_canonical(PAIRS[0], "alpaca")])
    write_jsonl(folder / "part-1.jsonl", [from_canonical(PAIRS[1], "alpaca")])
    data = ingest.load(f"hf:{folder}", on_progress=lambda done, total: None)
    assert data.formats == {f"hf:{folder}#train": "alpaca"}
    assert sorted(messages_of(data), key=str) == sorted(PAIRS, key=str)
    assert not list((tmp_path / "raw").glob("*.arrow"))


def test_gsm8k_ingests_cleanly(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "data" / "gsm8k" / "test.jsonl"
    report = ingest.ingest_to([src], tmp_path / "gsm8k.jsonl")
    assert report.formats == {str(src): "question_answer"}
    assert (report.read, report.written, report.rejected) == (1319, 1319, 0)
    assert not [f for f in report.findings if f.severity == "error"]


# --- rejects and counts -----------------------------------------------------------------------

BAD = [  # (line, reason, field) in tests/data/ingest/bad.jsonl; line 1 is good
    (2, "malformed_json", None),
    (3, "missing_field", "messages[0].role"),
    (4, "wrong_type", "messages[0].content"),
    (5, "empty_turn", "messages[1].content"),
    (6, "unknown_role", "messages[0].role"),
    (7, "invalid_utf8", None),
    (8, "not_an_object", None),
]


def test_each_reject_reason_names_file_line_and_field(tmp_path: Path) -> None:
    out = tmp_path / "clean.jsonl"
    report = ingest.ingest_to([DATA / "bad.jsonl"], out)
    assert (report.read, report.written, report.rejected) == (8, 1, 7)
    assert report.rejected_by_reason == {reason: 1 for _, reason, _ in BAD}
    side = [json.loads(x) for x in (tmp_path / "clean.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"], r["field"]) for r in side] == BAD
    assert all(r["file"] == str(DATA / "bad.jsonl") and r["detail"] and r["raw"] for r in side)
    assert len(out.read_text().splitlines()) == 1
    assert report.per_file == {str(DATA / "bad.jsonl"): {"read": 8, "written": 1, "rejected": 7}}


def test_unknown_schema_rejects_every_row(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "odd.jsonl", [{"foo": "a", "bar": "b"}, {"foo": "c"}])
    data = ingest.load(p)
    assert data.formats == {str(p): "unknown"}
    assert [(r.reason, r.line) for r in data.rejects] == [("unknown_schema", 1), ("unknown_schema", 2)]
    assert "foo" in data.rejects[0].detail


def test_lone_surrogate_escape_is_invalid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "bad \\ud800"}\n{"text": "emoji \\ud83d\\ude00"}\n')
    data = ingest.load(p)
    assert [r.reason for r in data.rejects] == ["invalid_utf8"]
    assert data.conversations[1].messages[0].content == "emoji \U0001f600"


def test_map_renames_columns_and_rejects_name_the_column(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "m.jsonl", [{"q": "1+1?", "a": "2"}, {"q": "2+2?"}])
    data = ingest.load(p, mapping={"instruction": "q", "output": "a"})
    assert data.formats == {str(p): "alpaca"}
    assert messages_of(data) == [(Message("user", "1+1?"), Message("assistant", "2"))]
    assert (data.rejects[0].reason, data.rejects[0].field) == ("missing_field", "a")
    with pytest.raises(UsageError, match="instrution"):
        ingest.load(p, mapping={"instrution": "q"})


def test_forced_format(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "t.jsonl", [{"text": "whole", "question": "q", "answer": "a"}])
    assert ingest.load(p).formats == {str(p): "question_answer"}
    data = ingest.load(p, format="text")
    assert data.conversations[0].messages == (Message("assistant", "whole"),)
    assert data.conversations[0].meta == {"format": "text"}
    with pytest.raises(UsageError):
        ingest.load(p, format="chatml")


def test_stream_is_lazy_ordered_and_checks_inputs_up_front(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="missing.jsonl"):
        ingest.stream([DATA / "sharegpt.jsonl", tmp_path / "missing.jsonl"])
    s = ingest.stream([DATA / "sharegpt.jsonl", DATA / "bad.jsonl"])
    items = list(s)
    assert [type(x) for x in items[:4]] == [Conversation] * 4
    assert sum(isinstance(x, Reject) for x in items) == 7
    assert s.rows_read == len(items) == 11
    assert s.formats == {str(DATA / "sharegpt.jsonl"): "sharegpt", str(DATA / "bad.jsonl"): "messages"}


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    paths = [DATA / "sharegpt.jsonl", DATA / "qa.csv"]
    ingest.load(paths, on_progress=lambda done, total: calls.append((done, total)))
    total = sum(p.stat().st_size for p in paths)
    assert calls[0] == (0, total) and calls[-1] == (total, total)


# --- output -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("out.parquet", None), ("outdir", "hf"), ("out.jsonl", None)])
def test_outputs_read_back_as_messages(tmp_path: Path, name: str, fmt: str | None) -> None:
    out = tmp_path / name
    report = ingest.ingest_to([DATA / "sharegpt.jsonl"], out, output_format=fmt)
    assert report.written == 3 and report.output_format == (fmt or name.rsplit(".", 1)[1])
    back = ingest.load(out)
    assert list(back.formats.values()) == ["messages"]
    assert messages_of(back) == messages_of(ingest.load(DATA / "sharegpt.jsonl"))


def test_output_is_trl_ready_jsonl(tmp_path: Path) -> None:
    ingest.ingest_to([DATA / "alpaca.json"], tmp_path / "o.jsonl", rejects_path=tmp_path / "r.jsonl")
    row = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert row["messages"] == [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    assert set(row) == {"messages", "id", "source"} and row["source"] == f"{DATA / 'alpaca.json'}[0]"
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "a.jsonl", [from_canonical(CHATS[0], "messages")])
    before = p.read_bytes()
    with pytest.raises(WorkbenchError, match="is the input"):
        ingest.ingest_to([p], tmp_path / "." / "a.jsonl")
    with pytest.raises(WorkbenchError, match="is the input"):
        ingest.ingest_to([p], tmp_path / "o.jsonl", rejects_path=p)
    assert p.read_bytes() == before


def test_failure_mid_stream_leaves_no_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    out = tmp_path / "o.jsonl"
    with pytest.raises(WorkbenchError, match="broken.parquet"):
        ingest.ingest_to([DATA / "sharegpt.jsonl", broken], out)
    assert sorted(os.listdir(tmp_path)) == ["broken.parquet"]


def test_default_rejects_path() -> None:
    assert ingest.default_rejects_path("d/clean.jsonl") == Path("d/clean.rejects.jsonl")
    assert ingest.default_rejects_path("d/clean/") == Path("d/clean.rejects.jsonl")


# --- unreadable inputs ------------------------------------------------------------------------


def _unreadable(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "plain_dir").mkdir()
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    return {
        "missing": str(tmp_path / "missing.jsonl"),
        "plain_dir": str(tmp_path / "plain_dir"),
        "empty": str(tmp_path / "empty.jsonl"),
        "unknown_ext": str(tmp_path / "notes.txt"),
    }


@pytest.mark.parametrize("case", ["missing", "plain_dir", "empty", "unknown_ext"])
def test_unreadable_input_raises_naming_it(tmp_path: Path, case: str) -> None:
    path = _unreadable(tmp_path)[case]
    with pytest.raises(WorkbenchError) as e:
        ingest.load([DATA / "sharegpt.jsonl", path])
    assert path in e.value.message and e.value.hint


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)  # fmt: skip


def test_cli_unreadable_files_are_one_clean_error(tmp_path: Path) -> None:
    cases = _unreadable(tmp_path)
    for case, path in cases.items():
        res = run_cli("ingest", str(DATA / "sharegpt.jsonl"), path, "-o", "out.jsonl", cwd=tmp_path)
        assert res.returncode == 1, (case, res.stderr)
        errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and path in errors[0], (case, res.stderr)
        assert "Traceback" not in res.stderr and res.stdout == ""
        assert not (tmp_path / "out.jsonl").exists()


def test_cli_json_summary_and_exit_0_with_rejects(tmp_path: Path) -> None:
    res = run_cli("ingest", str(DATA / "bad.jsonl"), str(DATA / "qa.csv"), "-o", "clean.jsonl", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["read"] == summary["written"] + summary["rejected"] == 11
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"] == 7
    assert summary["formats"] == {str(DATA / "bad.jsonl"): "messages", str(DATA / "qa.csv"): "question_answer"}
    assert len((tmp_path / "clean.rejects.jsonl").read_text().splitlines()) == 7


def test_cli_summary_on_stderr(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, ["ingest", str(DATA / "bad.jsonl"), "-o", str(tmp_path / "c.jsonl"),
                                   "--map", "output=answer", "--rejects", str(tmp_path / "why.jsonl")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "read 8 rows" in res.stderr and "unknown_role" in res.stderr and "messages" in res.stderr
    assert (tmp_path / "why.jsonl").exists()


def test_cli_unreachable_hub_name_is_one_clean_error(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"), "NO_COLOR": "1"}
    res = subprocess.run([sys.executable, "-m", "workbench.cli", "ingest", "hf:nobody/nothing", "-o", "o.jsonl"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.startswith("error: cannot read hf:nobody/nothing") and "Traceback" not in res.stderr


def test_json_array_is_read_row_by_row_with_the_same_rows_and_errors(tmp_path: Path) -> None:
    """A JSON array streams (the TUI shows its first rows before the last is parsed): same rows as one json.loads;
    a broken array is one clear error naming the line."""
    rows = [{"messages": [{"role": "user", "content": f"q{i} \U0001f600"}, {"role": "assistant", "content": "a"}]} for i in range(3)]
    good = tmp_path / "good.json"
    good.write_text(" [\n" + ",\n".join(json.dumps(r) for r in rows) + "\n] \n")
    data = ingest.load([str(good)])
    assert [c.messages[0].content for c in data.conversations] == [f"q{i} \U0001f600" for i in range(3)]
    assert [c.source.row for c in data.conversations] == [0, 1, 2]
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]")
    assert ingest.load([str(empty)]).rows_read == 0
    broken = tmp_path / "broken.json"
    broken.write_text("[\n" + json.dumps(rows[0]) + ",\n" + json.dumps(rows[1]) + "\n{}\n]")
    with pytest.raises(WorkbenchError, match=r"broken.json.*expected ',' or '\]' at line 4"):
        ingest.load([str(broken)])
