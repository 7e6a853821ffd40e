"""Curation at scale, driven by the pilot: a search that the next keystroke cancels, decisions that survive a
relaunch (and a quit that asks first), conflicting answers listed, go-to-row, template-wide findings once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, make_app, settle

pytestmark = pytest.mark.anyio


async def test_next_keystroke_cancels_a_running_search(in_data: Path) -> None:
    from textual.widgets import Static

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = app.session.rows
        runs: list[dict[str, object]] = []
        original = rows.search_chunks

        def slow(text, *, stop=None, **kw):  # type: ignore[no-untyped-def]
            run = {"text": text, "slices": 0, "stopped": False}
            runs.append(run)

            def watched() -> bool:
                if stop is not None and stop():
                    run["stopped"] = True
                    return True
                return False

            for hits, done in original(text, stop=watched, chunk=200):  # about one slice per row, each slow
                time.sleep(0.3)
                run["slices"] += 1
                yield hits, done

        rows.search_chunks = slow
        await pilot.press("slash", *"apple")
        await pilot.pause(0.5)  # the debounce has fired: the search runs, a spinner and a count show
        info = str(app.screen.query_one("#info", Static).content)
        assert "searching" in info and "match so far" in info, info
        await pilot.press("ctrl+u", *"fox", "enter")
        await settle(pilot)
        table = app.screen.query_one("#rows")
        assert list(table.view) == [4, 5]
        first = next(r for r in runs if r["text"] == "apple")
        last = next(r for r in runs if r["text"] == "fox")
        assert first["slices"] < last["slices"]  # the new query stopped the old scan half-way (a full scan takes more)
        assert not last["stopped"]
        assert "searching" not in str(app.screen.query_one("#info", Static).content)


async def test_decisions_survive_a_relaunch_and_quit_asks_first(in_data: Path) -> None:
    from workbench.tui.screens.confirm import QuitScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "x", "down", "down", "k")  # drop row 1, keep row 3
        assert app.session.decisions == {1: "drop", 3: "keep"}
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen) and app.is_running  # unexported decisions: asked, not quit
        assert "come back when you open this file again" in str(app.screen.query_one("#quit-note").content)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("q")  # quit anyway
        await pilot.pause()
        assert not app.is_running
    assert (in_data / "small.jsonl.workbench-decisions.jsonl").exists()

    again = make_app()
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert again.session.decisions == {1: "drop", 3: "keep"}
        table = again.screen.query_one("#rows")
        assert str(table.cells(1)[8]) == "drop" and str(table.cells(3)[8]) == "keep"


async def test_conflicting_answers_rows_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import OptionList

    from workbench.tui.screens.findings import FindingsScreen

    rows = [("What is 2+2?", "Four, since two and two make four in ordinary arithmetic."),
            ("Name a fruit.", "Apple."),
            ("What is 2+2?", "It is 22 if you concatenate the digits as strings in most languages."),
            ("Name a fruit.", "A banana is a long yellow fruit that monkeys like to eat a lot.")]  # fmt: skip
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for q, a in rows))
    monkeypatch.chdir(tmp_path)
    app = make_app("c.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        ol = screen.query_one("#groups", OptionList)
        ol.highlighted = screen.codes.index("conflicting_answers")
        await pilot.pause()
        assert list(screen.query_one("#group-rows").view) == [0, 1, 2, 3]
        assert "2 prompts appear with different answers (4 rows)" in str(screen.query_one("#group-info").content)


async def test_go_to_row_number_and_file_line(in_data: Path) -> None:
    from textual.widgets import Static

    from workbench.tui.screens.goto import GotoScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#rows")
        await pilot.press("colon", *"small.jsonl:10", "enter")
        await pilot.pause()
        assert table.current_row == 9
        await pilot.press("slash", *"apple", "enter")
        await settle(pilot)
        assert list(table.view) == [4, 5]
        await pilot.press("g", *"2", "enter")  # hidden by the filter: cleared, and said
        await settle(pilot)
        assert table.current_row == 2 and len(table.view) == 12
        assert any("hidden by the filter" in n.message for n in app._notifications)
        await pilot.press("g", *"999", "enter")
        await pilot.pause()
        assert isinstance(app.screen, GotoScreen)
        assert "does not exist" in str(app.screen.query_one("#goto-error", Static).content)
        await pilot.press("escape", "g", "ctrl+u", *":7", "enter")  # by line: line 7 is the reject, row 6
        await pilot.pause()
        assert table.current_row == 6
        await pilot.press("enter", "g", *"11", "enter")  # on the example screen, go-to shows that row
        await pilot.pause()
        assert app.screen.row == 11


async def test_template_wide_finding_is_shown_once_not_per_row(in_data: Path, fixtures_dir: Path) -> None:
    """Qwen2.5 injects a default system prompt into every row without one: a note above the table, no badges."""
    from textual.widgets import Static

    from workbench.tui import query

    app = make_app(model=str(fixtures_dir / "tokenizers" / "qwen2.5"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        s = app.session
        g = s.groups["hidden_system_prompt"]
        assert g.wide and len(g.rows) == 9  # the 10 conversations but row 0, which has its own system turn
        assert "template: hidden_system_prompt" in str(app.screen.query_one("#notes", Static).content)
        assert all("hidden_system_prompt" not in s.codes_of(r) for r in range(s.n))
        flagged = set(query.apply(s, query.parse("is:flagged")).tolist())
        assert 2 not in flagged  # a clean row stays clean
        assert list(query.apply(s, query.parse("code:hidden_system_prompt"))) == sorted(int(r) for r in g.rows)
