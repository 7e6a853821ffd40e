"""Messages as chat bubbles, one per turn: user on the left, assistant on the right, system across."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from workbench.printable import visible
from workbench.records import Message

ICON = {"system": "⚙ system", "user": "▶ user", "assistant": "◀ assistant", "tool": "⚒ tool"}


class Bubble(Static):
    DEFAULT_CSS = """
    Bubble { width: 85%; height: auto; padding: 0 1; border: round $primary; }
    Bubble.assistant { border: round $success; }
    Bubble.system { border: round $warning; width: 100%; }
    Bubble.tool { border: round $secondary; }
    """

    def __init__(self, message: Message, index: int) -> None:
        # data text: control characters shown escaped, never sent to the terminal; Text reads no markup
        text = Text(visible(message.content)) if message.content else Text("(empty)", style="dim italic")
        super().__init__(text, classes=message.role)
        self.role = message.role
        self.border_title = f"{ICON.get(message.role, message.role)} #{index}"
        self.border_subtitle = f"{len(message.content)} chars"


class BubbleRow(Horizontal):
    DEFAULT_CSS = """
    BubbleRow { height: auto; margin-bottom: 1; }
    BubbleRow.assistant { align-horizontal: right; }
    """


def bubbles(messages: Iterable[Message]) -> list[Widget]:
    return [BubbleRow(Bubble(m, i), classes=m.role) for i, m in enumerate(messages)]


class ChatView(VerticalScroll):
    """The conversation's turns, top to bottom."""

    DEFAULT_CSS = "ChatView { height: 1fr; padding: 0 1; }"

    def show(self, widgets: list[Widget]) -> None:
        self.remove_children()
        self.mount_all(widgets)
        self.scroll_home(animate=False)
