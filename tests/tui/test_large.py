"""A 200k-row file: the first screen is up while the background passes are still running, and keys still work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, make_app

pytestmark = pytest.mark.anyio
ROWS = 200_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    with open(path, "w") as fh:
        for i in range(ROWS):
            row = {"messages": [{"role": "user", "content": f"question {i}: how many apples are in basket {i % 97}?"},
                                {"role": "assistant", "content": f"There are {i % 13} apples in basket {i % 97}."}]}  # fmt: skip
            fh.write(json.dumps(row) + "\n")
    return path


async def test_first_screen_while_workers_run(big_file: Path) -> None:
    from workbench.tui.screens.example import ExampleScreen
    from workbench.tui.widgets.virtual_table import VirtualTable

    started = time.perf_counter()
    app = make_app(str(big_file))
    async with app.run_test(size=SIZE) as pilot:
        while app.first_rows_at is None and time.perf_counter() - started < 30:
            await pilot.pause(0.05)
        await pilot.pause()
        first = time.perf_counter() - started
        table = app.screen.query_one("#rows", VirtualTable)
        assert len(table.view) > 0
        assert table.cells(0)[1] == "1 big.jsonl"  # the line number first, then the file
        # the full read of 200k rows is still going: the screen did not wait for it
        assert not app.session.scanned
        assert any(w.group == "analyse" and w.is_running for w in app.workers)
        # and the UI answers keys meanwhile
        await pilot.press("end")
        await pilot.pause()
        assert table.current_row == len(table.view) - 1
        await pilot.press("home", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ExampleScreen) and app.screen.row == 0
    assert first < 15, f"first screen took {first:.1f}s"  # ~1s alone; generous for shared CI machines
