"""Two texts side by side with the words that differ highlighted (difflib over words)."""

from __future__ import annotations

import difflib
import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from workbench.printable import visible

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")

ONLY_LEFT = "bold #ffffff on #8b1e1e"
ONLY_RIGHT = "bold #ffffff on #1e5e8b"


def word_diff(a: str, b: str) -> tuple[Text, Text, float]:
    """Both texts as rich Text with differing words highlighted, and difflib's similarity ratio.

    Control characters in the texts are shown escaped (``\x1b``), never sent to the terminal."""
    a, b = visible(a), visible(b)
    ta, tb = _TOKENS.findall(a), _TOKENS.findall(b)
    sm = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    left, right = Text(), Text()
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        sa, sb = "".join(ta[i1:i2]), "".join(tb[j1:j2])
        if op == "equal":
            left.append(sa)
            right.append(sb)
        else:
            if sa:
                left.append(sa, style=ONLY_LEFT if sa.strip() else "")
            if sb:
                right.append(sb, style=ONLY_RIGHT if sb.strip() else "")
    return left, right, sm.ratio()


class DiffView(Horizontal):
    DEFAULT_CSS = """
    DiffView { height: 1fr; }
    DiffView > VerticalScroll { width: 1fr; border: round $primary; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diff-left"):
            yield Static("", id="diff-left-text")
        with VerticalScroll(id="diff-right"):
            yield Static("", id="diff-right-text")

    def show(self, left_title: str, left: str, right_title: str, right: str) -> float:
        a, b, ratio = word_diff(left, right)
        self.query_one("#diff-left", VerticalScroll).border_title = left_title
        self.query_one("#diff-right", VerticalScroll).border_title = right_title
        self.query_one("#diff-left-text", Static).update(a)
        self.query_one("#diff-right-text", Static).update(b)
        return ratio

    def clear(self, note: str = "") -> None:
        self.query_one("#diff-left-text", Static).update(Text(note, style="dim"))
        self.query_one("#diff-right-text", Static).update("")
