"""The chat view: an assistant turn's reasoning shows apart from its answer."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")
pytestmark = pytest.mark.anyio

from textual.app import App, ComposeResult

from workbench.records import Message
from workbench.tui.widgets.chat_view import Bubble, ChatView, bubbles


class Chat(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatView()


async def test_reasoning_is_shown_apart_from_the_answer() -> None:
    messages = [Message("user", "What is 2 plus 3?"), Message("assistant", "It is 5.", "Two and three make five.")]
    app = Chat()
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one(ChatView).show(bubbles(messages))
        await pilot.pause()
        answer = app.query(Bubble)[1]
        text = str(answer.render())
        assert text.index("reasoning") < text.index("Two and three make five.") < text.index("answer") < text.index("It is 5.")
        assert answer.border_subtitle == "8 chars + 24 of reasoning"
        assert "reasoning" not in str(app.query(Bubble)[0].render())
