"""Snapshot tests: each screen at 80x24 (the smallest usual terminal) and 160x45, after every background pass has
finished (so nothing depends on timing).

Regenerate after an intended change with: .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import make_app, settle

pytest.importorskip("pytest_textual_snapshot")

SMALL, LARGE = (80, 24), (160, 45)
BOTH = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x45"])


def _settled(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


@BOTH
def test_dataset_screen(snap_compare, in_data: Path, tiny_dir: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """At 80 columns the findings column stays on screen: narrow columns give way first."""
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=size, run_before=_settled())


@BOTH
def test_dataset_screen_without_model(snap_compare, in_data: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """No --model: the token columns are left out and the screen says which passes did not run."""
    app = make_app()
    assert snap_compare(app, terminal_size=size, run_before=_settled())


def test_dataset_screen_filtered_and_sorted(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=LARGE, run_before=_settled("slash", *"is:flagged", "enter", "s", "s"))


def test_example_screen_chat(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=LARGE, run_before=_settled(*["down"] * 8, "enter"))


@BOTH
def test_example_screen_tokens(snap_compare, in_data: Path, tiny_dir: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=size, run_before=_settled("enter", "t"))


@BOTH
def test_findings_screen(snap_compare, in_data: Path, tiny_dir: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=size, run_before=_settled("2"))


@BOTH
def test_duplicates_screen(snap_compare, in_data: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=size, run_before=_settled("3", "down", "enter", "down", "x"))


def test_stats_screen(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=LARGE, run_before=_settled("4"))


def test_help_screen(snap_compare, in_data: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=LARGE, run_before=_settled("question_mark"))


def test_quit_question(snap_compare, in_data: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=_settled("down", "x", "q"))


def test_go_to(snap_compare, in_data: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=_settled("colon", *"99", "enter"))
