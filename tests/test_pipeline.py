"""`workbench run`: the demo recipe end to end at a reduced size, stage skipping and invalidation, recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run_cli
from workbench import pipeline
from workbench import recipe as rc
from workbench.errors import UsageError, WorkbenchError

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "recipes" / "demo-cpu.yaml"
# the randomly initialised tiny model: the pretrained demo base is the README test's (slow) business
SMALL = ["model.name=tiny:chatml", "data.limit=48", "train.max_steps=4", "train.eval_every=2", "train.save_every=2", "eval.limit=4",
         "eval.gen_kwargs.max_gen_toks=8"]  # fmt: skip


@pytest.fixture()
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)  # recipes name data/ and recipes/tasks/ relative to the repo
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return REPO


def demo(tmp_path: Path, *extra: str) -> rc.Recipe:
    return rc.load(DEMO, [*SMALL, f"run_dir={tmp_path / 'run'}", f"report.path={tmp_path / 'report' / 'demo.md'}", *extra])


def statuses(result: pipeline.RunResult) -> dict[str, str]:
    return {s.name: s.status for s in result.stages}


def test_demo_end_to_end_then_noop(in_repo: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    hooks = pipeline.Hooks(stage=lambda rec: seen.append((rec.name, rec.status)))
    result = pipeline.run(demo(tmp_path), hooks=hooks)
    assert statuses(result) == dict.fromkeys(pipeline.STAGES, "ran")
    assert [n for n, st in seen if st == "running"] == list(pipeline.STAGES)
    run = tmp_path / "run"

    # every row is accounted for, stage by stage
    ingest = json.loads((run / "ingest.json").read_text())
    assert ingest["read"] == ingest["written"] + ingest["rejected"] and ingest["rejected"] == 4
    c = {s.name: s.counts for s in result.stages}
    assert c["dedup"]["read"] == ingest["written"] == c["dedup"]["kept"] + c["dedup"]["removed"]
    removed = [json.loads(line) for line in (run / "data" / "removed.jsonl").read_text().splitlines()]
    assert len(removed) == c["dedup"]["removed"] and all(r["removed"]["reason"] for r in removed)
    assert {"exact", "near", "contaminated"} <= {r["removed"]["reason"] for r in removed}
    assert c["check"]["rows"] == c["check"]["kept"] + c["check"]["too_long"] and c["check"]["too_long"] >= 8
    assert len((run / "data" / "too_long.jsonl").read_text().splitlines()) == c["check"]["too_long"]
    check = json.loads((run / "check.json").read_text())
    assert "trailing_turn" in {f["code"] for f in check["findings"]}  # the demo's planted defect is reported

    assert (run / "adapter" / "adapter_config.json").is_file()
    assert c["train"]["steps"] == 4
    report = tmp_path / "report" / "demo.md"
    assert result.report == report and report.is_file()
    text = report.read_text()
    assert "demo-quantity" in text and "Per-item flips" in text

    again = pipeline.run(demo(tmp_path))
    assert again.noop and statuses(again) == dict.fromkeys(pipeline.STAGES, "skipped")
    assert again.report == report


def test_template_edit_reruns_check_and_after(in_repo: Path, tmp_path: Path) -> None:
    first = pipeline.run(demo(tmp_path), until="check")
    assert statuses(first) == {"ingest": "ran", "dedup": "ran", "check": "ran", "train": "pending", "eval": "pending", "report": "pending"}
    template = (REPO / "workbench" / "template" / "jinja" / "chatml.jinja").read_text()
    edited = tmp_path / "edited.jinja"
    edited.write_text(template.replace("<|im_start|>assistant", "<|im_start|>assistant", 1) + "\n{#- edited -#}")
    second = pipeline.run(demo(tmp_path, f"model.template={edited}"), until="check")
    assert statuses(second)["ingest"] == statuses(second)["dedup"] == "skipped"
    assert statuses(second)["check"] == "ran"  # a template edit invalidates the prepared data
    third = pipeline.run(demo(tmp_path, f"model.template={edited}"), until="check")
    assert statuses(third)["check"] == "skipped"
    # a data edit reruns everything from ingest on
    fourth = pipeline.run(demo(tmp_path, f"model.template={edited}", "data.format=messages",
                               "data.sources=[data/demo/train.jsonl]"), until="dedup")  # fmt: skip
    assert statuses(fourth)["ingest"] == "ran" and statuses(fourth)["dedup"] == "ran"


def test_until_and_from(in_repo: Path, tmp_path: Path) -> None:
    r = demo(tmp_path)
    pipeline.run(r, until="dedup")
    again = pipeline.run(r, until="dedup", start_from="dedup")
    assert statuses(again)["ingest"] == "skipped" and statuses(again)["dedup"] == "ran"
    with pytest.raises(UsageError, match="--until"):
        pipeline.run(r, until="deploy")
    with pytest.raises(UsageError, match="comes after"):
        pipeline.run(r, until="dedup", start_from="train")


def test_check_finding_stops_the_run_before_training(in_repo: Path, tmp_path: Path) -> None:
    stopped: list[str] = []
    hooks = pipeline.Hooks(stage=lambda rec: stopped.append(rec.name) if rec.status == "failed" else None)
    with pytest.raises(WorkbenchError) as e:
        pipeline.run(demo(tmp_path, "check.fail_on=warning"), hooks=hooks)
    assert "trailing_turn" in e.value.message and "check.allow" in (e.value.hint or "")
    assert stopped == ["check"]
    assert not (tmp_path / "run" / "adapter").exists()
    # allowing the code (and nothing else at warning level) lets the run reach training
    result = pipeline.run(demo(tmp_path, "check.fail_on=warning", "check.allow=[trailing_turn]"), until="check")
    assert statuses(result)["check"] == "ran"


def test_interrupted_training_resumes(in_repo: Path, tmp_path: Path) -> None:
    class Interrupt(Exception):
        pass

    def stop_at_3(event) -> None:  # type: ignore[no-untyped-def]
        if getattr(event, "kind", None) == "step" and event.step == 3:
            raise Interrupt

    r = demo(tmp_path)
    with pytest.raises(Interrupt):
        pipeline.run(r, until="train", hooks=pipeline.Hooks(train=stop_at_3))
    assert pipeline.state_of(tmp_path / "run")["train"]["status"] == "running"
    assert any((tmp_path / "run" / "checkpoints").glob("checkpoint-2"))
    result = pipeline.run(r, until="train")
    assert statuses(result) == {"ingest": "skipped", "dedup": "skipped", "check": "skipped", "train": "ran",
                                "eval": "pending", "report": "pending"}  # fmt: skip
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    steps = [e["step"] for e in log if e.get("loss") is not None]
    assert steps and max(steps) == 4 and 1 in steps  # history from before the interruption is kept


def test_run_cli_until_check_json(in_repo: Path, tmp_path: Path) -> None:
    # the tiny model: the demo's pretrained base would be built first on a machine without it cached (minutes)
    res = run_cli("run", str(DEMO), *SMALL, f"run_dir={tmp_path / 'run'}", "--until", "check", "--json", cwd=REPO)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [s["status"] for s in out["stages"]][:3] == ["ran", "ran", "ran"]
    bad = run_cli("run", str(DEMO), f"run_dir={tmp_path / 'run'}", "--until", "nope", cwd=REPO)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_terminal_display_through_every_stage(in_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The live bars and messages a terminal user sees, driven through all six stages (not only the plain log)."""
    from workbench.console.run import render_table, run_display

    with run_display(tty=True) as hooks:
        result = pipeline.run(demo(tmp_path), hooks=hooks)
    render_table(result)
    assert statuses(result) == dict.fromkeys(pipeline.STAGES, "ran")
    captured = capsys.readouterr()
    for stage in pipeline.STAGES:
        assert f"✓ {stage}" in captured.err
    assert "report:" in captured.out


@pytest.mark.slow
def test_changed_settings_never_resume_an_old_checkpoint(in_repo: Path, tmp_path: Path) -> None:
    """Issue: change the learning rate, kill before the first new checkpoint, rerun: the old run's
    checkpoint was resumed and its adapter came out while recipe.yaml said otherwise."""

    class Interrupt(Exception):
        pass

    def stop_at(step: int, messages: list[str]):  # type: ignore[no-untyped-def]
        def on(event) -> None:  # type: ignore[no-untyped-def]
            if event.kind == "message":
                messages.append(event.message)
            if event.kind == "step" and event.step == step:
                raise Interrupt

        return on

    with pytest.raises(Interrupt):
        pipeline.run(demo(tmp_path), until="train", hooks=pipeline.Hooks(train=stop_at(3, [])))
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    said: list[str] = []
    with pytest.raises(Interrupt):
        pipeline.run(demo(tmp_path, "train.learning_rate=1e-3"), until="train", hooks=pipeline.Hooks(train=stop_at(1, said)))
    assert any(m.startswith("set aside checkpoints/checkpoint-2") for m in said)
    steps: list[int] = []
    hooks = pipeline.Hooks(train=lambda e: steps.append(e.step) if e.kind == "step" else None)
    result = pipeline.run(demo(tmp_path, "train.learning_rate=1e-3"), until="train", hooks=hooks)
    assert statuses(result)["train"] == "ran" and steps[0] == 1  # started over: nothing of the old run resumed
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["checkpoint"]["resumed_from"] is None and info["data_stages"] is True
    assert (tmp_path / "run" / "checkpoints-set-aside" / "checkpoint-2").is_dir()  # set aside, not deleted


@pytest.mark.slow
def test_train_command_runs_the_data_stages_first(in_repo: Path, tmp_path: Path) -> None:
    args = ["train", str(DEMO), "model.name=tiny:chatml", "train.max_steps=2", "train.eval_every=null", "train.save_every=null",
            "data.limit=16", "--json"]  # fmt: skip
    res = run_cli(*args, "--run-dir", str(tmp_path / "staged"), cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    run = tmp_path / "staged"
    state = json.loads((run / "stages.json").read_text())
    assert [state[s]["status"] for s in ("ingest", "dedup", "check", "train")] == ["done"] * 4
    removed = [json.loads(x)["removed"]["reason"] for x in (run / "data" / "removed.jsonl").read_text().splitlines()]
    assert removed.count("contaminated") >= 20  # the demo's planted eval-set copies never reach training
    info = json.loads((run / "run.json").read_text())
    checked = len((run / "data" / "checked.jsonl").read_text().splitlines()) + len((run / "heldout.jsonl").read_text().splitlines())
    assert info["data_stages"] is True and info["examples"]["rows_in"] == checked  # what the checks passed, held-out split included
    # a second train reuses the data stages and trains again
    again = run_cli(*args, "--run-dir", str(tmp_path / "staged"), cwd=REPO)
    assert again.returncode == 0 and json.loads((run / "stages.json").read_text())["ingest"] == state["ingest"]
    assert "= ingest" in again.stderr and "✓ train" in again.stderr

    raw = run_cli(*args, "--no-data-stages", "--run-dir", str(tmp_path / "raw"), cwd=REPO)
    assert raw.returncode == 0, raw.stderr[-2000:]
    info = json.loads((tmp_path / "raw" / "run.json").read_text())
    ingest = json.loads((run / "ingest.json").read_text())
    assert info["data_stages"] is False and info["examples"]["rows_in"] > checked  # duplicates and eval copies included
    assert info["examples"]["rows_in"] == ingest["read"] + json.loads((run / "ingest.json").read_text())["heldout"]["read"]
    assert "no dedup, decontamination or check ran" in " ".join(raw.stderr.split())
