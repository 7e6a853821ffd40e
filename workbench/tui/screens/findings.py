"""Findings: check, lint, mask and dedup results grouped by code with counts; a code lists its examples."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from workbench.tui.messages import DataChanged, OpenExample
from workbench.tui.session import Group, Session
from workbench.tui.widgets.job_bar import JobBar
from workbench.tui.widgets.row_cells import COLUMNS, SEVERITY_STYLE, TOKEN_COLUMNS, cells
from workbench.tui.widgets.virtual_table import VirtualTable


def label(g: Group) -> Text:
    t = Text()
    t.append("● ", style=SEVERITY_STYLE.get(g.severity, ""))
    if g.wide:
        t.append("template ", style="dim")
    t.append(g.code, style="bold")
    n = g.count if g.count is not None and g.count > len(g.rows) else len(g.rows)
    t.append(f"  {n:,}", style="dim")
    return t


class FindingsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "focus_next", "Switch pane", show=False),
        Binding("left", "focus_groups", "Codes", show=False),
        Binding("right", "focus_rows", "Examples", show=False),
    ]
    DEFAULT_CSS = """
    FindingsScreen #groups { width: 2fr; max-width: 46; height: 1fr; border: round $primary; }
    FindingsScreen #group-side { width: 3fr; }
    FindingsScreen #group-info { height: auto; max-height: 10; padding: 0 1; border: round $primary 50%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[str] = []

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(id="groups")
            with Vertical(id="group-side"):
                yield Static("", id="group-info")
                yield VirtualTable(COLUMNS, lambda row: cells(self.session, row), id="group-rows", flex_min=16)
        yield JobBar()
        yield Footer()

    def on_mount(self) -> None:
        if self.session.options.model is None:
            self.query_one("#group-rows", VirtualTable).hidden = set(TOKEN_COLUMNS)
        self.query_one("#groups", OptionList).border_title = "findings by code"
        self.reload()
        self.query_one("#groups", OptionList).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what != "rows":
            self.reload()

    def reload(self) -> None:
        groups = self.session.groups_sorted()
        ol = self.query_one("#groups", OptionList)
        current = self.current_code
        self.codes = [g.code for g in groups]
        ol.clear_options()
        ol.add_options([Option(label(g), id=g.code) for g in groups])
        if not groups:
            self.query_one("#group-info", Static).update(self._status())
            self.query_one("#group-rows", VirtualTable).set_view(np.empty(0, dtype=np.int64))
            return
        index = self.codes.index(current) if current in self.codes else 0
        ol.highlighted = index
        self.show_group(self.codes[index])

    def _status(self) -> Text:
        """Why the list is empty: passes still running, passes that did not run, or truly nothing found."""
        s = self.session
        running = [j.label for j in s.jobs.values() if not j.finished]
        t = Text()
        if running:
            t.append(f"still running: {', '.join(running)}…", style="yellow")
        for what, why in s.skipped.items():
            t.append(("\n" if t else "") + f"not run: {what} ({why})", style="yellow")
        if not t:
            t.append("no findings: every pass ran and found nothing", style="green")
        return t

    @property
    def current_code(self) -> str | None:
        ol = self.query_one("#groups", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.codes):
            return None
        return self.codes[ol.highlighted]

    def show_group(self, code: str) -> None:
        g = self.session.groups.get(code)
        if g is None:
            return
        t = Text()
        t.append(f"{g.code}", style="bold " + SEVERITY_STYLE.get(g.severity, ""))
        rows = np.unique(np.asarray(g.rows, dtype=np.int64))
        t.append(f"  ({g.severity}, {len(rows):,} example(s){', true of the template: not flagged per row' if g.wide else ''})\n", style="dim")
        t.append(g.message)
        if g.hint:
            t.append(f"\nhint: {g.hint}", style="yellow")
        self.query_one("#group-info", Static).update(t)
        table = self.query_one("#group-rows", VirtualTable)
        table.set_view(rows, keep_row=table.current_row)

    @on(OptionList.OptionHighlighted, "#groups")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.show_group(event.option.id)

    @on(OptionList.OptionSelected, "#groups")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#group-rows", VirtualTable).focus()

    @on(VirtualTable.Selected, "#group-rows")
    def _open(self, event: VirtualTable.Selected) -> None:
        self.post_message(OpenExample(event.row, self.query_one("#group-rows", VirtualTable).view))

    def action_focus_groups(self) -> None:
        self.query_one("#groups", OptionList).focus()

    def action_focus_rows(self) -> None:
        self.query_one("#group-rows", VirtualTable).focus()
