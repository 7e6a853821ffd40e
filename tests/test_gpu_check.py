"""bench/gpu_check.sh, gpu_wheels.sh and gpu_run.py, as far as a machine without a GPU can check them: syntax,
arguments, the planned steps, wheel pins that agree with the `gpu` extra, and a CPU smoke run of the driver."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_wheels.sh"])
def test_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(BENCH / script)]).returncode == 0


def test_dry_run_plans_every_step_for_both_backends(tmp_path: Path) -> None:
    res = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry-run"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OUT": str(tmp_path)})  # fmt: skip
    assert res.returncode == 0, res.stderr
    steps = re.findall(r"would run \[([\w-]+), (\d+)s\]", res.stdout)
    assert [s for s, _ in steps] == ["env", "unsloth-import", "tests-peft", "tests-unsloth", "e2e-peft", "e2e-unsloth"]
    assert "budget 285s" in res.stdout  # each step gets at most what is left of the under-5-minute budget
    assert "WORKBENCH_TEST_BACKEND=peft" in res.stdout and "WORKBENCH_TEST_BACKEND=unsloth" in res.stdout
    assert "import sys, unsloth, pytest" in res.stdout  # unsloth imported before the tests import transformers
    assert (tmp_path / "gpu_check.txt").is_file()
    bad = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--fast"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_wheel_pins_agree_with_the_gpu_extra() -> None:
    from packaging.requirements import Requirement

    listed = subprocess.run(["bash", str(BENCH / "gpu_wheels.sh"), "--list"], capture_output=True, text=True, check=True).stdout.split()
    pins = {re.sub(r"[-_.]+", "-", s.split("==")[0]).lower(): s.split("==")[1] for s in listed}
    assert len(pins) == len(listed)  # one version of each
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    for req in map(Requirement, extra):
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in ("transformers",):  # the GPU machine brings its own (5.17, the newest Unsloth admits)
            continue
        assert name in pins, f"{name} is in the gpu extra but not carried"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside the gpu extra's {req.specifier}"


def test_driver_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = subprocess.run([sys.executable, str(BENCH / "gpu_run.py"), "--backend", "peft", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0 and json.loads(res.stdout.splitlines()[-1]) == {"backend": "peft", "skipped": "no CUDA device"}


@pytest.mark.slow
def test_driver_smoke_run_on_cpu(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(BENCH / "gpu_run.py"), "--backend", "peft", "--out", str(tmp_path), "--smoke"],
                         capture_output=True, text=True, timeout=1200, env={**os.environ, "TQDM_DISABLE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    line = json.loads(res.stdout.splitlines()[-1])
    assert line["backend"] == "peft" and line["steps"] == 4 and line["trainable"] == line["plan_trainable"]
    assert line["tokens_per_s"] and "base" in line["eval"] and "adapter" in line["eval"]
