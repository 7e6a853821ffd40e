"""The built wheel carries the shipped lm-eval tasks and their data, and a task runs from it outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_tasks_that_run_outside_the_checkout(tmp_path: Path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not available in this environment")
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("workbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("gsm8k_local.yaml", "gsm8k_local_chat.yaml", "general_knowledge.yaml", "heldout.yaml", "utils.py",
              "gsm8k/train.jsonl", "gsm8k/test.jsonl", "gsm8k/LICENSE", "general/general_knowledge.jsonl", "general/LICENSE"):
        assert f"workbench/eval/taskfiles/{f}" in names, f
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)  # what pip would lay down: the package, nothing of the checkout
    model = tiny_model_dir("chatml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import json, workbench\n"
        f"assert workbench.__file__.startswith({str(site)!r}), workbench.__file__\n"
        "from workbench.eval import evaluate\n"
        f"r = evaluate({str(model)!r}, tasks=['general_knowledge', 'gsm8k_local'], limit=2, gen_kwargs={{'max_gen_toks': 2}})\n"
        "print(json.dumps({t: v.n for t, v in r.tasks.items()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == '{"general_knowledge": 2, "gsm8k_local": 2}'
