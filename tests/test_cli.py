"""The CLI as users meet it: the real entry point, help for every command, the README covers them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `workbench ARGS` through the installed entry point's module, as a user would."""
    full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=600,
    )


def command_names() -> list[str]:
    import typer.main

    from workbench.cli import app

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_top_level_help_lists_every_command() -> None:
    res = run_cli("--help")
    assert res.returncode == 0, res.stderr
    for name in command_names():
        assert name in res.stdout


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(name: str) -> None:
    res = run_cli(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout and len(res.stdout.splitlines()) > 3


@pytest.mark.parametrize("name", command_names())
def test_every_command_is_in_readme(name: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"workbench {name}" in readme, f"README.md has no entry for `workbench {name}`"


def test_unknown_command_is_usage_error() -> None:
    res = run_cli("frobnicate")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


def test_missing_file_is_one_clean_error(tmp_path: Path) -> None:
    res = run_cli("stats", str(tmp_path / "nope.jsonl"))
    assert res.returncode == 1
    assert "nope.jsonl" in res.stderr
    assert "Traceback" not in res.stderr


def test_model_names_of_run_work_in_check_and_mask(tmp_path: Path) -> None:
    """`--model tiny:chatml` (the README's name) resolves in `check` and `mask` as `run` and `train` resolve it."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}\n')
    env = {"WORKBENCH_CACHE": str(tmp_path / "cache")}
    check = run_cli("check", str(data), "--model", "tiny:chatml", "--json", env=env)
    assert check.returncode == 0, check.stderr
    assert '"rows": 1' in check.stdout
    mask = run_cli("mask", str(data), "--model", "tiny:chatml", "--json", env=env)
    assert mask.returncode == 0, mask.stderr
    assert '"labels"' in mask.stdout
    bad = run_cli("check", str(data), "--model", "tiny:nosuchfamily", env=env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "nosuchfamily" in bad.stderr
