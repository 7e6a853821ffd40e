"""Rows that declare tools (glaive / xLAM style): kept through ingest and the lazy index, passed to the chat template, shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tui.conftest import make_app, settle
from workbench.data import ingest
from workbench.data.rowindex import RowIndex
from workbench.records import Conversation

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def _write(path: Path) -> Path:
    msgs = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": "Let me check."}]
    rows = [{"messages": msgs, "tools": json.dumps([TOOL])},  # a JSON string, as glaive stores it
            {"messages": msgs, "tools": [TOOL]},
            {"messages": msgs},
            {"messages": msgs, "tools": "not json"}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tools_reach_the_conversation_and_bad_ones_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl")
    data = ingest.load([str(path)])
    assert [c.meta.get("tools") for c in data.conversations] == [[TOOL], [TOOL], None]
    assert [(r.line, r.reason, r.field) for r in data.rejects] == [(4, "wrong_type", "tools")]
    ix = RowIndex(path)
    ix.build()
    assert [ix.item(i).meta.get("tools") if isinstance(ix.item(i), Conversation) else "reject" for i in range(4)] == [
        [TOOL], [TOOL], None, "reject"]


def test_tools_go_to_the_templates_tools_argument(tmp_path: Path, fixtures_dir: Path) -> None:
    from workbench.template import load_tokenizer, render, render_and_mask

    tok = load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")
    data = ingest.load([str(_write(tmp_path / "t.jsonl"))])
    with_tools, plain = data.conversations[0], data.conversations[2]
    text = render(tok, with_tools)
    assert "<tools>" in text and '"name": "get_weather"' in text  # Qwen2.5 lists the schemas in its system turn
    assert "<tools>" not in render(tok, plain)
    res = render_and_mask(tok, with_tools)
    assert res.ok, res.problems  # the mask is still derived and verified with the tools block in the prefix
    assert "get_weather" in res.rendered.text


@pytest.mark.anyio
async def test_example_screen_shows_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Static

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "t.jsonl")
    app = make_app("t.jsonl")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        box = app.screen.query_one("#ex-tools", Static)
        assert box.display and "get_weather(city)" in str(box.content)
        await pilot.press("n", "n")
        assert not app.screen.query_one("#ex-tools", Static).display  # row 3 has no tools
