"""Go to a row: its number in the table, ``file:line`` or ``:line`` of the input, or a content id."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from workbench.tui.session import Session


def resolve(session: Session, text: str) -> tuple[int | None, str]:
    """The row ``text`` names, or None and what went wrong."""
    text = text.strip().replace(",", "")
    if not text:
        return None, "give a row number, file:line, :line or an id"
    if text.isdigit():
        row = int(text)
        return (row, "") if row < session.n else (None, f"row {row} does not exist: the file has {session.n:,} rows (0 to {session.n - 1:,})")
    hits = session.find(text)
    if hits:
        return hits[0], ""
    if ":" in text:
        return None, f"no row at line {text.rpartition(':')[2]} of {text.rpartition(':')[0] or 'the file'} (blank lines are not rows)"
    return None, f"no row with id {text}" + ("" if session.scanned else " yet: ids are known once every row is read")


class GotoScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Cancel")]
    DEFAULT_CSS = """
    GotoScreen { align: center middle; }
    GotoScreen > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 0 1; }
    GotoScreen #goto-error { color: $error; height: auto; }
    """

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("go to: row number, file:line, :line, or an id")
            yield Input(placeholder="1234   data.jsonl:1235   :1235   3f2a9c01", id="goto-input")
            yield Static("", id="goto-error")

    def on_mount(self) -> None:
        self.query_one("#goto-input", Input).focus()

    @on(Input.Submitted, "#goto-input")
    def _go(self, event: Input.Submitted) -> None:
        row, why = resolve(self.session, event.value)
        if row is None:
            self.query_one("#goto-error", Static).update(why)
            return
        self.dismiss()
        self.app.go_to(row)  # type: ignore[attr-defined]
