"""Asked before quitting with decisions that were not exported yet."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from workbench.tui.session import Session


class QuitScreen(ModalScreen[None]):
    """Quit anyway (the decisions stay in the sidecar), export first, or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "dismiss", "Stay"),
        Binding("q,y", "quit_now", "Quit"),
        Binding("e", "export", "Export"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 76; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 2; }
    """

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        s = self.session
        t = Text(f"{len(s.decisions):,} keep/drop decision(s), not exported since the last change.", style="bold")
        if s.log.path is not None and s.log.error is None:
            t.append(f"\nThey are saved in {s.log.path} and come back when you open this file again.")
        else:
            t.append(f"\n{s.log.error or 'They are not saved anywhere'}: quitting loses them.", style="bold red")
        t.append("\nThe curated set on disk does not have them until you export (e).")
        with Vertical():
            yield Static(t, id="quit-note")
            with Horizontal():
                yield Button("Export first (e)", variant="primary", id="quit-export")
                yield Button("Quit (q)", variant="error", id="quit-now")
                yield Button("Stay (esc)", id="quit-stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "quit-now":
            self.action_quit_now()
        elif event.button.id == "quit-export":
            self.action_export()
        else:
            self.dismiss()

    def action_quit_now(self) -> None:
        self.app.exit()

    def action_export(self) -> None:
        self.dismiss()
        self.app.action_export()  # type: ignore[attr-defined]
