"""The dataset screen: every example in a virtual table, filtered and sorted, columns filled as passes finish."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from workbench.tui import query
from workbench.tui.messages import DataChanged, OpenExample
from workbench.tui.session import FLAGGED, Session
from workbench.tui.widgets.job_bar import JobBar
from workbench.tui.widgets.row_cells import COLUMNS, cells
from workbench.tui.widgets.virtual_table import VirtualTable

SORTABLE = ("row", "tokens", "trained", "chars", "turns", "findings", "cluster")


class DatasetScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "leave_filter", "Table", show=False),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("f", "next_finding", "Next finding"),
        Binding("k", "decide('keep')", "Keep"),
        Binding("x", "decide('drop')", "Drop"),
        Binding("u", "undo", "Undo"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self._query = query.Query()

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=f"filter: {query.HELP}", id="filter")
        yield VirtualTable(COLUMNS, lambda row: cells(self.session, row), id="rows")
        yield Static("", id="info")
        yield JobBar()
        yield Footer()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#rows", VirtualTable)

    def on_mount(self) -> None:
        self.table.focus()
        self.table.set_view(np.arange(self.session.n, dtype=np.int64))
        self.set_interval(0.5, self._tick)
        self._info()

    def _tick(self) -> None:
        if any(not j.finished for j in self.session.jobs.values()):
            self.table.refresh_rows()

    def on_screen_resume(self) -> None:
        self.table.refresh_rows()
        self._info()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what == "rows" and self._query.empty and self.table.sort_key in (None, "row"):
            if len(self.table.view) != self.session.n:
                self.table.set_view(np.arange(self.session.n, dtype=np.int64), keep_row=self.table.current_row)
        elif message.what != "rows" and not (self._query.empty and self.table.sort_key in (None, "row")):
            self.refilter()
        self.table.refresh_rows()
        self._info()

    def _info(self) -> None:
        s = self.session
        t = Text()
        t.append(f"{s.n:,} rows", style="bold")
        if len(self.table.view) != s.n:
            t.append(f" · {len(self.table.view):,} match")
        if self.table.sort_key:
            t.append(f" · sorted by {self.table.sort_key} {'▼' if self.table.sort_desc else '▲'}")
        if s.decisions:
            t.append(f" · {len(s.decisions)} decision(s)")
        if s.options.model is None:
            t.append(" · no --model: token columns off", style="dim")
        elif s.tokenizer is None and "tokenizer" in s.errors:
            t.append(" · tokenizer failed to load", style="red")
        for err in self._query.errors:
            t.append(f" · {err}", style="red")
        self.query_one("#info", Static).update(t)

    # --- filter and sort -------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(0.25, self.refilter)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.refilter()
        self.table.focus()

    def set_filter(self, text: str) -> None:
        self.query_one("#filter", Input).value = text
        self.refilter()

    def refilter(self) -> None:
        self._query = query.parse(self.query_one("#filter", Input).value)
        self._run_filter(self._query, self.table.sort_key, self.table.sort_desc)

    @work(thread=True, exclusive=True, group="filter", exit_on_error=False)
    def _run_filter(self, q: query.Query, key: str | None, desc: bool) -> None:
        worker = get_current_worker()
        stop = lambda: worker.is_cancelled
        view = query.apply(self.session, q, stop=stop) if not q.empty else np.arange(self.session.n, dtype=np.int64)
        view = query.sort(self.session, view, key, desc)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, view)

    def _show(self, view: np.ndarray) -> None:
        self.table.set_view(view, keep_row=self.table.current_row)
        self._info()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    def sort_by(self, key: str, desc: bool | None = None) -> None:
        t = self.table
        if desc is None:
            desc = not t.sort_desc if t.sort_key == key else key != "row"
        t.sort_key, t.sort_desc = (None if key == "row" and not desc else key), desc
        self._run_filter(self._query, t.sort_key, t.sort_desc)

    def action_cycle_sort(self) -> None:
        cur = self.table.sort_key or "row"
        nxt = SORTABLE[(SORTABLE.index(cur) + 1) % len(SORTABLE)] if cur in SORTABLE else "row"
        self.sort_by(nxt, desc=nxt != "row")

    def action_reverse_sort(self) -> None:
        self.sort_by(self.table.sort_key or "row", desc=not self.table.sort_desc)

    @on(VirtualTable.HeaderClicked, "#rows")
    def _header(self, event: VirtualTable.HeaderClicked) -> None:
        if event.column in SORTABLE:
            self.sort_by(event.column)

    # --- rows -----------------------------------------------------------------------------------------

    @on(VirtualTable.Selected, "#rows")
    def _open(self, event: VirtualTable.Selected) -> None:
        self.post_message(OpenExample(event.row, self.table.view))

    def action_next_finding(self) -> None:
        t = self.table
        hit = np.flatnonzero(self.session.flags[t.view[t.cursor + 1 :]] & FLAGGED)
        if len(hit):
            t.cursor = t.cursor + 1 + int(hit[0])
        else:
            self.notify("no further row with a finding")

    def action_decide(self, what: str) -> None:
        row = self.table.current_row
        if row is None:
            return
        current = self.session.decision(row)
        self.session.decide(row, None if current == what else what)
        self.table.refresh_rows()
        self._info()

    def action_undo(self) -> None:
        row = self.session.undo()
        if row is None:
            self.notify("nothing to undo")
            return
        self.table.move_to_row(row)
        self.table.refresh_rows()
        self._info()
