"""Hostile data in the app: control characters never reach the terminal, markup in data is text, deep rows are rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, make_app, settle

pytest.importorskip("textual")

HOSTILE = "clear\x1b[2J title\x1b]0;pwned\x07 clip\x1b]52;c;ZWNobw==\x07 [bold red]markup[/] [/] end"


def _raw_controls(text: str) -> list[str]:
    return [ch for ch in text if ch == "\x1b" or ch == "\x07" or 0x80 <= ord(ch) <= 0x9F]


def test_chat_bubble_diff_and_table_cells_escape_control_characters() -> None:
    from rich.text import Text

    from workbench.records import Message
    from workbench.tui.widgets.chat_view import Bubble
    from workbench.tui.widgets.diff_view import word_diff

    bubble = Bubble(Message("user", HOSTILE), 0)
    shown = str(bubble.content)
    assert not _raw_controls(shown) and "\\x1b[2J" in shown and "[bold red]markup[/]" in shown
    left, right, _ = word_diff(HOSTILE, HOSTILE + " more")
    assert isinstance(left, Text) and not _raw_controls(left.plain + right.plain)
    assert "\\x1b]52;c;" in left.plain


@pytest.mark.anyio
async def test_example_screen_shows_hostile_rows_escaped(tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.tui.screens.example import ExampleScreen
    from workbench.tui.widgets.chat_view import Bubble
    from workbench.tui.widgets.token_view import TokenView

    monkeypatch.chdir(tmp_path)
    row = {"messages": [{"role": "user", "content": HOSTILE}, {"role": "assistant", "content": "ok \x1b[31mred"}]}
    Path("evil.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row | {"x": 1}) + "\n")
    app = make_app("evil.jsonl", model=str(tiny_dir))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        ex = app.screen
        assert isinstance(ex, ExampleScreen)
        bubbles = [str(b.content) for b in ex.query(Bubble)]
        assert bubbles and not _raw_controls("".join(bubbles))
        assert "\\x1b]0;pwned\\x07" in bubbles[0]
        tokens = "".join(p.text for p in ex.query_one("#ex-tokens", TokenView).pieces)
        assert tokens and not _raw_controls(tokens)
        rendered = str(ex.query_one("#ex-rendered").content)
        assert not _raw_controls(rendered) and "\\x1b[31m" in rendered


def test_row_index_rejects_a_deep_row_and_reads_the_rest(tmp_path: Path) -> None:
    from workbench.data import RowIndex
    from workbench.records import Conversation, Reject

    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path = tmp_path / "deep.jsonl"
    path.write_text(good + "\n" + '{"messages": ' + "[" * 5000 + "]" * 5000 + "}\n" + "[" * 5000 + "\n" + good + "\n")
    rows = RowIndex(path)
    rows.build()
    items = [rows.item(i) for i in range(len(rows))]
    assert [type(x) for x in items] == [Conversation, Reject, Reject, Conversation]
    assert items[1].reason == "malformed_json" and "nested too deeply" in items[1].detail  # type: ignore[union-attr]
