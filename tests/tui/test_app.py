"""The app driven by Textual's pilot on real files: open, filter, examples, token masks, findings, decisions, save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, make_app, settle

pytest.importorskip("textual")
pytestmark = pytest.mark.anyio


async def test_open_filter_open_example_token_view(in_data: Path, tiny_dir: Path) -> None:
    from workbench.template.mask import IGNORE, render_and_mask
    from workbench.tui.screens.dataset import DatasetScreen
    from workbench.tui.screens.example import ExampleScreen
    from workbench.tui.widgets.token_view import TokenView
    from workbench.tui.widgets.virtual_table import VirtualTable

    app = make_app(model=str(tiny_dir), max_length=64)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        table = screen.query_one("#rows", VirtualTable)
        assert list(table.view) == list(range(12))
        assert app.session.value("tokens", 0) is not None  # the tokenise pass filled the column

        await pilot.press("slash", *"is:dup", "enter")
        await settle(pilot)
        assert list(table.view) == [1, 3, 4, 5]  # two clusters: an exact pair, a near pair

        await pilot.press("slash", "ctrl+u", *"fox", "enter")
        await settle(pilot)
        assert list(table.view) == [4, 5]

        await pilot.press("down", "enter")
        await pilot.pause()
        ex = app.screen
        assert isinstance(ex, ExampleScreen) and ex.row == 5
        conv = app.session.rows.item(5)
        expected = render_and_mask(app.session.tokenizer, conv, max_length=64).rendered
        view = ex.query_one("#ex-tokens", TokenView)
        assert [p.token_id for p in view.pieces] == expected.input_ids
        assert view.trained_positions == [i for i, label in enumerate(expected.labels) if label != IGNORE]
        assert view.trained_positions  # the tokens the mask trains are exactly the highlighted ones

        await pilot.press("p")  # back to the previous row of the filtered order
        assert ex.row == 4
        await pilot.press("escape")
        assert isinstance(app.screen, DatasetScreen)


async def test_step_to_next_finding(in_data: Path, tiny_dir: Path) -> None:
    from workbench.tui.screens.example import ExampleScreen

    app = make_app(model=str(tiny_dir), max_length=64)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        ex = app.screen
        assert isinstance(ex, ExampleScreen) and ex.row == 0
        flagged = [r for r in range(app.session.n) if app.session.codes_of(r)]
        seen = []
        for _ in range(len(flagged)):
            await pilot.press("f")
            seen.append(ex.row)
        assert seen == flagged
        await pilot.press("F")
        assert ex.row == flagged[-2]
        await pilot.press("n")
        assert ex.row == flagged[-2] + 1


async def test_keep_drop_undo_and_save(in_data: Path, tmp_path: Path) -> None:
    from workbench.tui.screens.duplicates import DuplicatesScreen
    from workbench.tui.screens.export import ExportScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DuplicatesScreen)
        # the largest cluster first; its members: the kept row, then the removed one
        assert screen.cluster_id is not None
        members = screen.member_rows()
        assert len(members) == 2
        kept, removed = members
        assert app.session.is_kept(kept) and not app.session.is_kept(removed)

        await pilot.press("enter", "down", "k")  # into the members; keep the row dedup removed
        assert app.session.decision(removed) == "keep" and app.session.is_kept(removed)
        await pilot.press("u")  # undo
        assert app.session.decision(removed) is None and not app.session.is_kept(removed)
        await pilot.press("up", "x")  # drop the row dedup kept
        assert app.session.decision(kept) == "drop"

        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        kept_path, removed_path = tmp_path / "out.jsonl", tmp_path / "out.removed.jsonl"
        app.screen.query_one("#export-kept").value = str(kept_path)
        app.screen.query_one("#export-removed").value = str(removed_path)
        await pilot.click("#export-write")
        await settle(pilot)

    kept_rows = [json.loads(line) for line in kept_path.read_text().splitlines()]
    removed_rows = [json.loads(line) for line in removed_path.read_text().splitlines()]
    # 10 conversations (2 of 12 lines are rejects): dedup removes 2, the hand drops 1 more
    assert len(kept_rows) + len(removed_rows) == 10
    assert len(removed_rows) == 3
    reasons = sorted(r["removed"]["reason"] for r in removed_rows)
    assert reasons == ["exact", "manual", "near"]
    assert all("messages" in r for r in kept_rows)


async def test_export_matches_dedup_write_outputs(in_data: Path, tmp_path: Path) -> None:
    """Saving from the app writes byte for byte what dedup.write_outputs writes for the same decisions."""
    from workbench import dedup
    from workbench.data import ingest

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "x", "e")
        await pilot.pause()
        app.screen.query_one("#export-kept").value = str(tmp_path / "a.jsonl")
        app.screen.query_one("#export-removed").value = str(tmp_path / "a.removed.jsonl")
        await pilot.press("enter")
        await settle(pilot)
    data = ingest.load(["small.jsonl"])
    result = dedup.dedup(data.conversations)
    dedup.write_outputs(result, tmp_path / "b.jsonl", tmp_path / "b.removed.jsonl", overrides={1: "drop"})
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.removed.jsonl").read_bytes() == (tmp_path / "b.removed.jsonl").read_bytes()


async def test_bad_file_is_said_in_place_of_the_table(in_data: Path) -> None:
    from textual.widgets import Static

    from workbench.tui.widgets.virtual_table import VirtualTable

    app = make_app("missing.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        box = app.screen.query_one("#open-error", Static)
        assert box.display and "cannot read missing.jsonl" in str(box.content)
        assert "hint: check the path" in str(box.content)
        assert not app.screen.query_one("#rows", VirtualTable).display  # no empty table under a toast
        assert app.session.n == 0


async def test_tokenizer_that_cannot_load_is_a_message(in_data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    app = make_app(model=str(tmp_path / "empty-model"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        notes = [n.message for n in app._notifications]
        assert any("holds no tokenizer files" in m for m in notes), notes
        assert app.session.n == 12 and app.session.scanned  # the rest of the app works without it


async def test_help_and_command_palette_entries(in_data: Path) -> None:
    from workbench.tui.screens.help import HelpScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("Dataset", "Findings", "Duplicates", "Stats", "Export curated set", "Find duplicates",
                      "Undo decision", "Filter: over max length", "Filter: EOS not trained", "Filter: zero trained tokens"):
            assert title in titles


async def test_tiny_model_name_works(in_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`workbench tui data --model tiny:chatml`: the name resolves as `run` resolves it, and tokens fill in."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    app = make_app(model="tiny:chatml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.session.tokenizer is not None and "tokenizer" not in app.session.errors
        assert app.session.value("tokens", 0) is not None
