"""Hardening, at the command line: nothing lost (outputs never destroy inputs or foreign folders),
nothing executed (templates from data are sandboxed), every fault one clean error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run_cli


def _rows(n: int = 6) -> str:
    return "".join(
        json.dumps({"messages": [{"role": "user", "content": f"question number {i} about apples"},
                                 {"role": "assistant", "content": f"answer {i}: pears and plums"}]}) + "\n"
        for i in range(n)
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _clean_refusal(res, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert res.returncode in (1, 2), res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: "), res.stderr
    for w in words:
        assert w in res.stderr, res.stderr


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "train.jsonl").write_text(_rows())
    (d / "notes.txt").write_text("my notes")
    return d


# --- 1. outputs that named an existing folder deleted it -----------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "{d}/train.jsonl", "-o", "{d}"],
        ["dedup", "{d}/train.jsonl", "-o", "{d}"],
        ["dedup", "{d}/train.jsonl", "--removed", "{d}"],
        ["dedup", "{d}/train.jsonl", "--report", "{d}"],
        ["stats", "{d}/train.jsonl", "--frame", "{d}"],
        ["stats", "{d}/train.jsonl", "--plot", "{d}"],
    ],
    ids=["ingest-o", "dedup-o", "dedup-removed", "dedup-report", "stats-frame", "stats-plot"],
)
def test_an_output_naming_a_folder_of_the_user_s_is_refused_and_the_folder_survives(folder: Path, args: list[str]) -> None:
    before = _tree(folder.parent)
    res = run_cli(*[a.format(d=folder) for a in args])
    _clean_refusal(res, str(folder))
    assert _tree(folder.parent) == before


@pytest.mark.parametrize("flag", ["--frame", "--plot"])
def test_stats_never_overwrites_its_input(folder: Path, flag: str) -> None:
    src = folder / "train.jsonl"
    before = src.read_bytes()
    res = run_cli("stats", str(src), flag, str(src))
    _clean_refusal(res, "is the input")
    assert src.read_bytes() == before


def test_ingest_output_inside_a_save_to_disk_input_is_refused(tmp_path: Path) -> None:
    from workbench.data import write_conversations
    from workbench.records import Conversation, Message, Source

    ds = tmp_path / "ds"
    write_conversations(ds, [Conversation.make([Message("user", "q"), Message("assistant", "a")], Source("x.jsonl", 1))], "hf")
    before = _tree(tmp_path)
    res = run_cli("ingest", str(ds), "-o", str(ds / "clean.jsonl"))
    _clean_refusal(res, "inside the input")
    assert _tree(tmp_path) == before


def test_ingest_may_replace_an_hf_folder_it_wrote(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    out = tmp_path / "hfout"
    assert run_cli("ingest", str(src), "-o", str(out)).returncode == 0
    res = run_cli("ingest", str(src), "-o", str(out))
    assert res.returncode == 0, res.stderr
    import datasets

    assert len(datasets.load_from_disk(str(out))) == 6


def test_a_symlinked_output_pointing_at_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    (tmp_path / "out.jsonl").symlink_to(src)
    res = run_cli("ingest", str(src), "-o", str(tmp_path / "out.jsonl"))
    _clean_refusal(res, "is the input")
    assert src.read_text() == _rows()


@pytest.mark.parametrize("flag", ["--removed", "--report", "-o"])
def test_dedup_outputs_equal_to_an_input_are_refused(tmp_path: Path, flag: str) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    res = run_cli("dedup", str(src), flag, str(src))
    _clean_refusal(res, "is the input")
    assert src.read_text() == _rows()


def test_dedup_against_file_is_an_input_too(tmp_path: Path) -> None:
    src, ev = tmp_path / "a.jsonl", tmp_path / "eval.jsonl"
    src.write_text(_rows())
    ev.write_text(_rows(2))
    res = run_cli("dedup", str(src), "--against", str(ev), "--removed", str(ev))
    _clean_refusal(res, "is the input")
    assert ev.read_text() == _rows(2)


def test_report_to_a_folder_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    keep = tmp_path / "somedir"
    keep.mkdir()
    (keep / "thesis.tex").write_text("years of work")
    res = run_cli("report", str(run), "-o", str(keep))
    _clean_refusal(res, str(keep))
    assert (keep / "thesis.tex").read_text() == "years of work"
    res = run_cli("report", str(run), "-o", str(run / "run.json"))
    _clean_refusal(res, "is the input")


def test_a_recipe_s_report_path_naming_a_folder_stops_the_run_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(_rows())
    keep = tmp_path / "docs"
    keep.mkdir()
    (keep / "index.md").write_text("mine")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  sources: [{tmp_path / 'train.jsonl'}]\nmodel:\n  name: tiny:chatml\n"
                      f"run_dir: {tmp_path / 'run'}\nreport:\n  path: {keep}\n")  # fmt: skip
    res = run_cli("run", str(recipe))
    _clean_refusal(res, "report.path", str(keep))
    assert (keep / "index.md").read_text() == "mine"
    assert not (tmp_path / "run").exists()


def test_a_run_dir_holding_the_data_or_foreign_files_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "proj"
    data.mkdir()
    (data / "train.jsonl").write_text(_rows())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  sources: [{data / 'train.jsonl'}]\nmodel:\n  name: tiny:chatml\nrun_dir: {data}\n")
    res = run_cli("run", str(recipe), "--until", "ingest")
    _clean_refusal(res, "run_dir")
    assert sorted(p.name for p in data.iterdir()) == ["train.jsonl"]


# --- 11. every output path is checked before any work --------------------------------------------


def test_dedup_same_path_twice_fails_before_reading(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    res = run_cli("dedup", str(src), "-o", str(tmp_path / "x.jsonl"), "--removed", str(tmp_path / "x.jsonl"))
    _clean_refusal(res, "-o and --removed are the same path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]


def test_ingest_output_equal_to_rejects_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    res = run_cli("ingest", str(src), "-o", str(tmp_path / "x.jsonl"), "--rejects", str(tmp_path / "x.jsonl"))
    _clean_refusal(res, "same path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]


# --- 2. templates from task files run sandboxed ---------------------------------------------------


def test_dedup_against_a_hostile_task_yaml_runs_nothing(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    (tmp_path / "test.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    task = tmp_path / "evil.yaml"
    task.write_text(
        f"task: evil\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'test.jsonl'}\n"
        "doc_to_text: \"{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}\"\n"
    )
    res = run_cli("dedup", str(src), "--against", str(task), cwd=tmp_path)
    _clean_refusal(res, "evil.yaml", "unsafe template refused")
    assert res.returncode == 1
    assert not (tmp_path / "PWNED").exists()


# --- 3. terminal escapes in data never reach the terminal raw -------------------------------------

ESCAPES = "wipe\x1b[2J title\x1b]0;pwned\x07 clip\x1b]52;c;ZWNobw==\x07 [bold red]markup[/] [/] done"


def _hostile_rows(tmp_path: Path) -> Path:
    row = {"messages": [{"role": "user", "content": ESCAPES + " " + "tell me about apples and pears " * 3},
                        {"role": "assistant", "content": "ok \x1b[31m" + ESCAPES}]}  # fmt: skip
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n" + _rows(3))
    return path


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text[:400])


def test_dedup_cluster_preview_shows_escapes_visibly(tmp_path: Path) -> None:
    res = run_cli("dedup", str(_hostile_rows(tmp_path)))
    assert res.returncode == 0, res.stderr
    _no_raw_controls(res.stderr + res.stdout)
    assert "\\x1b[2J" in res.stderr and "[bold red]markup[/]" in res.stderr


def test_mask_token_view_shows_escapes_visibly(tmp_path: Path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    tok = tiny_model_dir("chatml", model=False)
    res = run_cli("mask", str(_hostile_rows(tmp_path)), "--model", str(tok), "--limit", "1")
    assert res.returncode == 0, res.stderr
    _no_raw_controls(res.stdout + res.stderr)
    assert "\\x1b" in res.stdout


def test_check_and_ingest_output_hold_no_raw_escapes(tmp_path: Path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    tok = tiny_model_dir("chatml", model=False)
    evil = _hostile_rows(tmp_path)
    res = run_cli("check", str(evil), "--model", str(tok))
    assert "Traceback" not in res.stderr
    _no_raw_controls(res.stdout + res.stderr)
    res = run_cli("ingest", str(evil), "-o", str(tmp_path / "clean.jsonl"))
    assert res.returncode == 0, res.stderr
    _no_raw_controls(res.stdout + res.stderr)


# --- 12. paths with markup, long error lines, Ctrl-C ----------------------------------------------


def test_a_path_with_markup_and_escapes_prints_as_written(tmp_path: Path) -> None:
    bad = tmp_path / "a[/]b[bold]\x1b]0;x\x07.jsonl"
    res = run_cli("stats", str(bad))
    _clean_refusal(res, "a[/]b[bold]\\x1b]0;x\\x07.jsonl")
    _no_raw_controls(res.stderr)


def test_error_lines_are_not_wrapped_in_a_log(tmp_path: Path) -> None:
    deep = tmp_path / ("long-folder-name-" * 8) / "data.jsonl"
    res = run_cli("stats", str(deep))
    assert res.returncode == 1
    first = res.stderr.splitlines()[0]
    assert first.startswith("error: ") and str(deep) in first
    assert res.stderr.splitlines()[1].startswith("hint: ")


def test_run_status_line_with_markup_in_the_run_dir(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(_rows())
    recipe = tmp_path / "r.yaml"
    run_dir = tmp_path / "runs[/]x[bold]"
    recipe.write_text(f"data:\n  sources: [{tmp_path / 'train.jsonl'}]\nmodel:\n  name: tiny:chatml\nrun_dir: '{run_dir}'\n")
    res = run_cli("run", str(recipe), "--until", "ingest")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "MarkupError" not in res.stderr
    assert str(run_dir) in res.stdout


def test_ctrl_c_prints_interrupted_exits_130_and_leaves_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    import workbench.dedup.files as files
    from workbench.cli import main

    src = tmp_path / "a.jsonl"
    src.write_text(_rows())

    def interrupted(rows, kept, fh):  # type: ignore[no-untyped-def]
        fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_copy_lines", interrupted)
    monkeypatch.setattr(sys, "argv", ["workbench", "dedup", str(src)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]


# --- 8. deeply nested JSON is one reject, not a crash ---------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


def _with_deep_row(tmp_path: Path) -> Path:
    path = tmp_path / "deep.jsonl"
    path.write_text(_rows(2) + '{"messages": ' + DEEP + "}\n" + DEEP + "\n" + _rows(3))
    return path


def test_ingest_rejects_a_deep_row_and_reads_the_rest(tmp_path: Path) -> None:
    res = run_cli("ingest", str(_with_deep_row(tmp_path)), "-o", str(tmp_path / "out.jsonl"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["read"] == 7 and report["written"] == 5 and report["rejected_by_reason"] == {"malformed_json": 2}
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 4] and "nested too deeply" in rejects[0]["detail"]


def test_a_deep_row_in_a_json_array_is_one_reject(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in _rows(3).splitlines()]
    path = tmp_path / "rows.json"
    path.write_text("[" + json.dumps(rows[0]) + ', {"messages": ' + DEEP + "}, " + json.dumps(rows[1]) + "]")
    res = run_cli("ingest", str(path), "-o", str(tmp_path / "out.jsonl"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["written"] == 2 and report["rejected_by_reason"] == {"malformed_json": 1}


@pytest.mark.parametrize("command", [["stats"], ["dedup"], ["check", "--model", "{tok}"], ["mask", "--model", "{tok}"]])
def test_every_command_survives_a_deep_row(tmp_path: Path, tiny_model_dir, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    tok = str(tiny_model_dir("chatml", model=False))
    res = run_cli(command[0], str(_with_deep_row(tmp_path)), *[a.format(tok=tok) for a in command[1:]])
    assert "Traceback" not in res.stderr and "RecursionError" not in res.stderr, res.stderr
    assert res.returncode == 0, res.stderr


# --- 10. zero usable rows is an error, not "no findings" -----------------------------------------


def _all_rejected(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": oops}\n{"messages": []}\n[1, 2]\n')
    return path


@pytest.mark.parametrize("command", [["check", "--model", "{tok}"], ["stats"], ["dedup"], ["mask", "--model", "{tok}"], ["tui"]])
def test_zero_usable_rows_is_an_error_with_reject_counts(tmp_path: Path, tiny_model_dir, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    tok = str(tiny_model_dir("chatml", model=False))
    src = _all_rejected(tmp_path)
    res = run_cli(command[0], str(src), *[a.format(tok=tok) for a in command[1:]])
    _clean_refusal(res, "no usable rows", "3 read", "3 rejected", "malformed_json")
    assert res.returncode == 1 and "no findings" not in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # dedup wrote no empty kept file


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [("header.csv", "instruction,output\n", "no rows"), ("blank.jsonl", "\n   \n" * 5000, "empty"), ("blank.csv", " \r\n" * 3000, "empty")],
)
@pytest.mark.parametrize("command", [["check", "--model", "{tok}"], ["stats"], ["dedup"], ["tui"]])
def test_files_without_rows_are_errors(tmp_path: Path, tiny_model_dir, name: str, content: str, words: str, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    tok = str(tiny_model_dir("chatml", model=False))
    (tmp_path / name).write_text(content)
    res = run_cli(command[0], str(tmp_path / name), *[a.format(tok=tok) for a in command[1:]])
    _clean_refusal(res, words)
    assert res.returncode == 1


def test_tui_that_cannot_open_its_input_exits_1(tmp_path: Path) -> None:
    res = run_cli("tui", str(tmp_path / "missing.jsonl"))
    _clean_refusal(res, "missing.jsonl")
    assert res.returncode == 1


# --- 9. one huge row: memory follows the rows rendered --------------------------------------------


def test_a_huge_row_is_reported_not_tokenised(tmp_path: Path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from workbench.template import MAX_CHARS

    tok = str(tiny_model_dir("chatml", model=False))
    huge = {"messages": [{"role": "user", "content": "summarise"}, {"role": "assistant", "content": "word " * (MAX_CHARS // 5 + 10)}]}
    path = tmp_path / "huge.jsonl"
    path.write_text(_rows(3) + json.dumps(huge) + "\n")
    res = run_cli("check", str(path), "--model", tok, "--json")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    found = {f["code"]: f for f in json.loads(res.stdout)["findings"]}
    assert "too long to render" in found["render_error"]["message"] and len(found["render_error"]["example_ids"]) == 1
    res = run_cli("stats", str(path), "--model", tok, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["render_errors"] == 1
    res = run_cli("mask", str(path), "--model", tok, "--index", "3")
    assert res.returncode == 0 and "too long to render" in res.stdout


# --- 7. a full disk (a file-size limit makes writes fail for real) is one clean error --------------


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["ingest", "{src}", "-o", "{d}/out.jsonl"], "out.jsonl"),
        (["ingest", "{src}", "-o", "{d}/outhf"], "outhf"),
        (["dedup", "{src}", "-o", "{d}/out.jsonl"], "out.jsonl"),
        (["stats", "{src}", "--frame", "{d}/out.csv"], "out.csv"),
    ],
    ids=["ingest-jsonl", "ingest-hf", "dedup", "stats-frame"],
)
def test_a_write_that_runs_out_of_space_is_one_error_and_keeps_the_earlier_output(tmp_path: Path, args: list[str], output: str) -> None:
    import os
    import resource
    import subprocess
    import sys

    src = tmp_path / "a.jsonl"
    src.write_text(_rows(4000))
    earlier = tmp_path / output
    if output.endswith("hf"):
        earlier.mkdir()
        (earlier / ".workbench-output").write_text("")
        (earlier / "old.arrow").write_text("earlier")
    else:
        earlier.write_text("earlier")
    before = _tree(tmp_path)

    def small_disk() -> None:  # writes past 100 kB fail with EFBIG, as a full disk fails with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    res = subprocess.run([sys.executable, "-m", "workbench", *[a.format(src=src, d=tmp_path) for a in args]],
                         capture_output=True, text=True, preexec_fn=small_disk, env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert error == [f"error: cannot write {earlier}: file too large for the file system or the file-size limit"], res.stderr
    after = _tree(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # the earlier output and the input untouched
    assert not [p for p in tmp_path.rglob("*") if ".workbench-" in p.name and p.name != ".workbench-output"]  # no temp left


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    import sys

    from workbench.cli import main

    monkeypatch.setattr(sys, "argv", ["workbench", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return int(e.value.code or 0), capsys.readouterr().err


def test_an_unwritable_output_folder_is_one_error_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    src = tmp_path / "a.jsonl"
    src.write_text(_rows())
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # root may write anywhere: the folder's answer is simulated
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == locked else real_access(p, mode, **k))
    code, err = _main(monkeypatch, capsys, "dedup", str(src), "-o", str(locked / "kept.jsonl"))
    assert code == 1 and err.startswith("error: cannot write -o ") and "permission denied" in err and "Traceback" not in err
    assert list(locked.iterdir()) == []


def test_a_full_disk_mid_write_is_one_error_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    import workbench.outputs as outputs

    src = tmp_path / "a.jsonl"
    src.write_text(_rows(200))

    class Full:
        def __init__(self, fh) -> None:  # type: ignore[no-untyped-def]
            self.fh = fh

        def write(self, s: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *a: object) -> None:
            self.fh.close()

    monkeypatch.setattr(outputs, "open", lambda *a, **k: Full(open(*a, **k)), raising=False)
    code, err = _main(monkeypatch, capsys, "ingest", str(src), "-o", str(tmp_path / "out.jsonl"))
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == f"error: cannot write {tmp_path / 'out.jsonl'}: no space left on the device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]
