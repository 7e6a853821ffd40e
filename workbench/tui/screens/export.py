"""Export / save: the curated set after every decision, and the removed side file, written atomically."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.errors import WorkbenchError
from workbench.tui.messages import DataChanged
from workbench.tui.session import Session, default_outputs


class ExportScreen(ModalScreen[dict[str, int] | None]):
    """Asks for the two paths (.jsonl or .parquet for the kept rows), then writes both."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 90; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    ExportScreen Input { margin-bottom: 1; }
    ExportScreen #export-note { margin-bottom: 1; }
    """

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        kept, removed = default_outputs(self.session.options.paths)
        with Vertical():
            yield Static(self._note(), id="export-note")
            yield Label("kept rows (.jsonl, .parquet, or a folder for an HF dataset)")
            yield Input(kept, id="export-kept")
            yield Label("removed rows, each with its reason (JSONL side file)")
            yield Input(removed, id="export-removed")
            yield Button("Write", variant="primary", id="export-write")

    def _note(self) -> Text:
        s = self.session
        t = Text("Export the curated set", style="bold")
        t.append(f"\n{s.n:,} rows; {len(s.decisions)} decision(s) by hand")
        if s.dedup_result is not None:
            t.append(f"; dedup removes {s.dedup_result.counts['removed']:,} before decisions")
        else:
            t.append("; duplicates not computed (d on the duplicates screen)", style="dim")
        if not s.scanned:
            t.append("\nstill reading rows in the background: the export reads every row itself", style="yellow")
        return t

    @on(Input.Submitted)
    @on(Button.Pressed, "#export-write")
    def _write(self) -> None:
        kept = self.query_one("#export-kept", Input).value.strip()
        removed = self.query_one("#export-removed", Input).value.strip()
        if not kept or not removed:
            self.notify("give both paths", severity="warning")
            return
        self.query_one("#export-write", Button).disabled = True
        self.write(kept, removed)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def write(self, kept: str, removed: str) -> None:
        try:
            counts = self.session.save(kept, removed)
        except WorkbenchError as e:
            self.app.call_from_thread(self.app.show_error, e, "export failed")  # type: ignore[attr-defined]
            self.app.call_from_thread(self._enable)
            return
        msg = f"wrote {counts['kept']:,} rows to {kept} and {counts['removed']:,} to {removed}"
        self.app.call_from_thread(self.app.notify, msg, title="exported")
        self.app.call_from_thread(self.dismiss, counts)
        self.app.call_from_thread(lambda: self.app.screen.post_message(DataChanged("decisions")))

    def _enable(self) -> None:
        self.query_one("#export-write", Button).disabled = False
