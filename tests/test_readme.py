"""The README's two commands, run as a new user would: a fresh clone, a clean virtual environment.

Slow (minutes: a full install, the demo run and the test suite), so marked `slow`; `.ci/run` runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> tuple[str, str]:
    """The first two bash blocks under "## Two commands": set up + main job, set up + tests."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) >= 2, "README's 'Two commands' section must open with two bash blocks"
    return blocks[0].strip(), blocks[1].strip()


def readme_band() -> dict[str, tuple[float, float]]:
    """The band README states for the demo's figures (measured by bench/demo_band.py): name -> (low, high)."""
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split("## What the demo shows", 1)[1].split("\n## ", 1)[0].split())
    num = r"([0-9.]+)"
    found = {
        "strict": re.search(rf"strict exact match {num} → {num}–{num}", text),
        "flexible": re.search(rf"flexible extraction {num}–{num} → {num}–{num}", text),
        "loss": re.search(rf"held-out loss {num}–{num} → {num}–{num}", text),
    }
    assert all(found.values()), f"README's demo section must state the band: {found}"
    s, f, h = (tuple(float(x) for x in m.groups()) for m in found.values())  # type: ignore[union-attr]
    return {"strict_before": (s[0], s[0]), "strict_after": (s[1], s[2]), "flex_before": f[0:2], "flex_after": f[2:4],
            "loss_before": h[0:2], "loss_after": h[2:4]}  # fmt: skip


def assert_in_band(doc: dict) -> None:
    m = lambda who, f: doc[who]["tasks"]["demo-quantity"]["metrics"][f"exact_match,{f}"]["value"]  # noqa: E731
    got = {"strict_before": m("base", "strict-match"), "strict_after": m("adapter", "strict-match"),
           "flex_before": m("base", "flexible-extract"), "flex_after": m("adapter", "flexible-extract"),
           "loss_before": doc["base"]["heldout"]["loss"], "loss_after": doc["adapter"]["heldout"]["loss"]}  # fmt: skip
    band = readme_band()
    outside = {k: (round(v, 4), band[k]) for k, v in got.items() if not band[k][0] - 1e-9 <= v <= band[k][1] + 1e-9}
    assert not outside, f"demo figures outside README's band: {outside}"


def test_readme_states_the_band_and_the_committed_report_is_in_it() -> None:
    band = readme_band()
    assert all(lo <= hi for lo, hi in band.values())
    text = (REPO / "reports" / "demo" / "report.md").read_text(encoding="utf-8")
    row = re.search(r"\| demo-quantity \| exact_match,strict-match \| target \| 200 \| ([0-9.]+) \| ([0-9.]+) \|", text)
    assert row, "the committed demo report has no strict-match row"
    before, after = float(row.group(1)), float(row.group(2))
    assert before == band["strict_before"][0] and band["strict_after"][0] <= after <= band["strict_after"][1]
    assert "**SHIP**:" in text


def test_readme_has_the_two_commands() -> None:
    main_job, tests = readme_commands()
    for cmd in (main_job, tests):
        assert "pip install torch==2.13.0" in cmd  # the CPU wheel, never a CUDA download
        assert cmd.startswith("python3 -m venv .venv")
    assert "workbench run recipes/demo-cpu.yaml" in main_job
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.split("&&")[-1].strip() in ci  # CI runs the README's own test command


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("WORKBENCH_NESTED") == "1", reason="already inside the fresh-clone run")
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_fresh_clone_runs_both_readme_commands(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "workbench"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    shared = REPO.parent / "shared"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(WORKBENCH_NESTED="1", TQDM_DISABLE="1", WORKBENCH_CACHE=str(tmp_path / "cache"))  # a new machine: the base is pretrained anew
    if shared.is_dir():
        env["WORKBENCH_FIXTURES"] = str(shared / "fixtures")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    main_job, tests = readme_commands()
    shutil.rmtree(clone / "reports" / "demo", ignore_errors=True)  # the committed example must be made anew

    res = subprocess.run(main_job, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, f"main job failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    report = clone / "reports" / "demo" / "report.md"
    assert report.is_file()
    assert "**SHIP**:" in report.read_text(encoding="utf-8")
    assert_in_band(json.loads((clone / "runs" / "demo-cpu" / "eval.json").read_text(encoding="utf-8")))

    res = subprocess.run(tests, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, f"test command failed:\n{res.stdout[-5000:]}\n{res.stderr[-3000:]}"
    assert re.search(r"\d+ passed", res.stdout)
