"""The run-directory lock: a second process fails fast with one line; a lock left by a killed process is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.train.lock import LOCK_NAME, holder, run_lock

REPO = Path(__file__).resolve().parent.parent
HOLD = "import sys, time\nfrom workbench.train.lock import run_lock\nwith run_lock(sys.argv[1], command='holder'):\n    print('ready', flush=True)\n    time.sleep(60)\n"


def hold(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding the lock on ``run_dir`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_holder_fails_fast_naming_the_first(tmp_path: Path) -> None:
    proc = hold(tmp_path / "run")
    try:
        t0 = time.perf_counter()
        with pytest.raises(WorkbenchError) as e, run_lock(tmp_path / "run"):
            pass
        assert time.perf_counter() - t0 < 5  # fails at once, never waits
        assert f"pid {proc.pid}" in e.value.message and "in use" in e.value.message and "\n" not in e.value.message
        assert "run_dir" in (e.value.hint or "")
    finally:
        proc.kill()
        proc.wait()
    # killed with SIGKILL, its lock is free again, and the file still names it: a stale lock, taken over
    said: list[str] = []
    with run_lock(tmp_path / "run", on_message=said.append):
        assert holder(tmp_path / "run")["pid"] == os.getpid()  # type: ignore[index]
    assert len(said) == 1 and f"pid {proc.pid}" in said[0] and "stale" in said[0]


def test_stale_lock_file_from_a_dead_pid_is_taken_over_with_a_message(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pid = dead_pid()
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "command": "workbench run", "since": "2026-01-01 00:00:00"}))
    said: list[str] = []
    with run_lock(run, on_message=said.append):
        pass
    assert said and f"pid {pid}" in said[0] and "no longer running" in said[0]
    assert (run / LOCK_NAME).read_text() == ""  # released cleanly: an empty lock file is a free lock
    quiet: list[str] = []
    with run_lock(run, on_message=quiet.append):
        pass
    assert quiet == []  # nothing stale after a clean release


def test_nested_use_in_one_process(tmp_path: Path) -> None:
    with run_lock(tmp_path / "r"), run_lock(tmp_path / "r"):
        assert holder(tmp_path / "r")["pid"] == os.getpid()  # type: ignore[index]
    assert holder(tmp_path / "r") is None


def test_cli_run_on_a_locked_run_dir_is_one_line_exit_1(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = hold(run)
    try:
        res = subprocess.run([sys.executable, "-m", "workbench", "run", str(REPO / "recipes" / "demo-cpu.yaml"), f"run_dir={run}",
                              "--until", "ingest"], capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert res.returncode == 1 and "Traceback" not in res.stderr
    text = " ".join(res.stderr.split())  # the error line may be wrapped where stderr is not a terminal
    assert text.startswith("error: run directory") and f"in use by another workbench run (pid {proc.pid}" in text
    assert not (run / "ingest.json").exists()  # it wrote nothing
