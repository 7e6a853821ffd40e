"""Resume picks only a complete checkpoint written with the same settings and data; kill -9 and a full disk
mid-save leave a partial one that is set aside, never resumed and never deleted."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from tests.test_train import convs, make  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.train import checkpoints as ck  # noqa: E402
from workbench.train import trainer as tr  # noqa: E402
from workbench.train.lock import holder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LONG = ("train.max_steps=8", "train.save_every=2", "train.save_total_limit=3")


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("WORKBENCH_CACHE", None)
    else:
        os.environ["WORKBENCH_CACHE"] = old


class Stop(Exception):
    pass


def stop_at(step: int) -> Any:
    def crash(event: Any) -> None:
        if event.kind == "step" and event.step == step:
            raise Stop

    return crash


def recorder(messages: list[str], steps: list[int]) -> Any:
    def on(event: Any) -> None:
        if event.kind == "message":
            messages.append(event.message)
        elif event.kind == "step":
            steps.append(event.step)

    return on


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("checkpoint-")) if d.is_dir() else []


def test_marker_records_sizes_and_a_truncated_file_is_incomplete(tmp_path: Path) -> None:
    c = tmp_path / "checkpoint-4"
    c.mkdir()
    (c / "adapter_model.safetensors").write_bytes(b"x" * 100)
    (c / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    assert "no completion record" in (ck.incomplete(c) or "")
    ck.write_marker(c, key="k", settings={"train.learning_rate": 0.1})
    assert ck.incomplete(c) is None
    (c / "adapter_model.safetensors").write_bytes(b"x" * 10)
    assert "adapter_model.safetensors is 10 bytes, 100 were written" in (ck.incomplete(c) or "")
    assert ck.changes({"train.learning_rate": 0.1, "data.train": "a"}, {"train.learning_rate": 0.2, "data.train": "b"}) == [
        "data.train: the rows changed", "train.learning_rate: 0.1 -> 0.2"]


KILL = """
import os, signal, sys
from pathlib import Path
import transformers
from tests.test_train import convs, make
from workbench.train import trainer as tr

save_rng = transformers.Trainer._save_rng_state
def killed_mid_save(self, output_dir):  # weights and optimizer are written, the rest of checkpoint-4 is not
    if self.state.global_step == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return save_rng(self, output_dir)
transformers.Trainer._save_rng_state = killed_mid_save
tr.train(make(Path(sys.argv[1]), *sys.argv[2:]), prepared=convs(40))
"""


def test_kill_9_while_saving_resumes_from_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL, str(tmp_path), *LONG], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpts = tmp_path / "run" / "checkpoints"
    assert names(ckpts) == ["checkpoint-2", "checkpoint-4"] and ck.incomplete(ckpts / "checkpoint-4")
    killed = holder(tmp_path / "run")
    assert killed is not None  # its lock file still names it
    messages: list[str] = []
    steps: list[int] = []
    res = tr.train(make(tmp_path, *LONG), prepared=convs(40), resume=True, on_progress=recorder(messages, steps))
    assert steps == [3, 4, 5, 6, 7, 8] and res.steps == 8  # from checkpoint-2, the newest complete one
    assert any("took over a stale lock" in m and f"pid {killed['pid']}" in m for m in messages)
    aside = [m for m in messages if m.startswith("set aside checkpoints/checkpoint-4 (incomplete")]
    assert len(aside) == 1 and "checkpoints-set-aside" in aside[0]
    assert names(tmp_path / "run" / ck.SET_ASIDE) == ["checkpoint-4"]  # kept, not deleted
    assert any("resuming from checkpoint-2" in m for m in messages)


def test_full_disk_while_saving_is_a_clean_error_and_resume_survives_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    save_opt = transformers.Trainer._save_optimizer_and_scheduler

    def disk_full(self: Any, output_dir: str) -> None:
        if self.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "optimizer.pt"))
        save_opt(self, output_dir)

    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", disk_full)
    with pytest.raises(WorkbenchError) as e:
        tr.train(make(tmp_path, *LONG), prepared=convs(40))
    assert "disk is full" in e.value.message and "step 4" in e.value.message and "--resume" in (e.value.hint or "")
    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", save_opt)
    messages: list[str] = []
    steps: list[int] = []
    tr.train(make(tmp_path, *LONG), prepared=convs(40), resume=True, on_progress=recorder(messages, steps))
    assert steps[0] == 3 and any("checkpoint-4 (incomplete" in m for m in messages)


@pytest.mark.slow
def test_a_checkpoint_written_with_other_settings_is_never_resumed(tmp_path: Path) -> None:
    with pytest.raises(Stop):
        tr.train(make(tmp_path, *LONG), prepared=convs(40), on_progress=stop_at(5))
    ckpts = tmp_path / "run" / "checkpoints"
    assert names(ckpts) == ["checkpoint-2", "checkpoint-4"]
    changed = make(tmp_path, *LONG, "train.learning_rate=5e-3")
    # --resume with a changed learning rate: an error naming the change; the checkpoints stay where they are
    with pytest.raises(WorkbenchError) as e:
        tr.train(changed, prepared=convs(40), resume=True)
    assert "cannot resume checkpoint-4" in e.value.message and "train.learning_rate: 0.01 -> 0.005" in e.value.message
    assert names(ckpts) == ["checkpoint-2", "checkpoint-4"]
    # other data is a change too
    with pytest.raises(WorkbenchError, match="data.train: the rows changed"):
        tr.train(make(tmp_path, *LONG), prepared=convs(40, start=1000), resume=True)
    # `run` after an interruption (auto): stale checkpoints are set aside with a message; killed before the
    # first new checkpoint and run again, it still starts over rather than resume the old run
    messages: list[str] = []
    with pytest.raises(Stop):
        tr.train(changed, prepared=convs(40), resume="auto", on_progress=lambda ev: (recorder(messages, [])(ev), stop_at(1)(ev)))
    assert sum("stale: written with train.learning_rate: 0.01 -> 0.005" in m for m in messages) == 2
    steps: list[int] = []
    res = tr.train(changed, prepared=convs(40), resume="auto", on_progress=recorder([], steps))
    assert steps[0] == 1 and res.steps == 8
    # the result is the new settings' adapter: byte for byte what an uninterrupted run with them writes
    clean = tr.train(make(tmp_path / "clean", *LONG, "train.learning_rate=5e-3"), prepared=convs(40))
    assert (res.adapter_dir / "adapter_model.safetensors").read_bytes() == (clean.adapter_dir / "adapter_model.safetensors").read_bytes()
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["checkpoint"]["resumed_from"] is None and len(names(tmp_path / "run" / ck.SET_ASIDE)) == 2


def test_a_matching_run_resumes_and_longer_training_is_not_a_change(tmp_path: Path) -> None:
    with pytest.raises(Stop):
        tr.train(make(tmp_path, *LONG), prepared=convs(40), on_progress=stop_at(5))
    steps: list[int] = []
    res = tr.train(make(tmp_path, *LONG, "train.max_steps=10", "train.eval_every=5", "train.threads=2"), prepared=convs(40),
                   resume=True, on_progress=recorder([], steps))  # fmt: skip
    assert steps[0] == 5 and res.steps == 10
    assert json.loads((res.run_dir / "run.json").read_text())["checkpoint"]["resumed_from"] == "checkpoint-4"
