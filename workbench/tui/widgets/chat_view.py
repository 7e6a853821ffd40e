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
        super().__init__(bubble_text(message), classes=message.role)
        self.role = message.role
        self.border_title = f"{ICON.get(message.role, message.role)} #{index}"
        self.border_subtitle = f"{len(message.content)} chars" + (
            f" + {len(message.reasoning)} of reasoning" if message.reasoning is not None else ""
        )


def bubble_text(message: Message) -> Text:
    """The turn's text; an assistant turn's reasoning first, dimmed and set apart from the answer."""
    text = Text()
    if message.reasoning is not None:
        text.append("reasoning\n", style="bold dim")
        text.append(visible(message.reasoning.strip()) or "(empty)", style="dim italic")
        text.append("\n" + "─" * 12 + " answer\n", style="bold dim")
    if message.content:
        text.append(visible(message.content))  # control characters shown escaped, never sent raw
    else:
        text.append("(empty)", style="dim italic")
    return text


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
