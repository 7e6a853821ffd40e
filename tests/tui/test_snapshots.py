"""Snapshot tests: each screen at a fixed size, after every background pass has finished (so nothing depends on timing).

Regenerate after an intended change with: .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, make_app, settle

pytest.importorskip("pytest_textual_snapshot")


def _settled(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_dataset_screen(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled())


def test_dataset_screen_filtered_and_sorted(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("slash", *"is:flagged", "enter", "s", "s"))


def test_example_screen_chat(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("down", "down", "down", "down", "down", "down", "down", "down", "enter"))


def test_example_screen_tokens(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("enter", "t"))


def test_findings_screen(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("2"))


def test_duplicates_screen(snap_compare, in_data: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("3", "down", "enter", "down", "x"))


def test_stats_screen(snap_compare, in_data: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(model=str(tiny_dir), max_length=64)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("4"))


def test_help_screen(snap_compare, in_data: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("question_mark"))
