"""The dataset screen: every example in a virtual table, filtered and sorted, columns filled as passes finish."""

from __future__ import annotations

import time
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
from workbench.tui.session import Session
from workbench.tui.widgets.job_bar import JobBar
from workbench.tui.widgets.notes import error_text, notes
from workbench.tui.widgets.row_cells import COLUMNS, TOKEN_COLUMNS, cells
from workbench.tui.widgets.virtual_table import VirtualTable

SORTABLE = ("row", "tokens", "trained", "chars", "turns", "findings", "cluster")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STREAM_EVERY = 0.15  # seconds between partial results of a running search


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
    DEFAULT_CSS = """
    DatasetScreen #notes { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    DatasetScreen #open-error { height: 1fr; padding: 1 2; display: none; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self._query = query.Query()
        self._search: tuple[float, int] | None = None  # (share searched, matches so far) while a search runs
        self._spin = 0
        self._generation = 0  # which filter run a partial result belongs to

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=f"filter: {query.HELP}", id="filter")
        yield Static("", id="notes")
        yield Static("", id="open-error")
        yield VirtualTable(COLUMNS, lambda row: cells(self.session, row), id="rows")
        yield Static("", id="info")
        yield JobBar()
        yield Footer()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#rows", VirtualTable)

    def on_mount(self) -> None:
        self.table.focus()
        if self.session.options.model is None:
            self.table.hidden = set(TOKEN_COLUMNS)
        self.table.set_view(np.arange(self.session.n, dtype=np.int64))
        self.set_interval(0.5, self._tick)
        self.set_interval(0.1, self._spinner)
        self._redraw_notes()
        self._info()

    def _tick(self) -> None:
        if any(not j.finished for j in self.session.jobs.values()):
            self.table.refresh_rows()

    def _spinner(self) -> None:
        if self._search is not None:
            self._spin += 1
            self._info()

    def on_screen_resume(self) -> None:
        self.table.refresh_rows()
        self._redraw_notes()
        self._info()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what == "rows" and self._query.empty and self.table.sort_key in (None, "row"):
            if len(self.table.view) != self.session.n:
                self.table.set_view(np.arange(self.session.n, dtype=np.int64), keep_row=self.table.current_row)
        elif message.what not in ("rows", "error", "skipped") and not (self._query.empty and self.table.sort_key in (None, "row")):
            self.refilter(keep=True)
        self.table.refresh_rows()
        self._redraw_notes()
        self._info()

    def _redraw_notes(self) -> None:
        s = self.session
        err = self.query_one("#open-error", Static)
        if s.open_error is not None:
            err.update(error_text(s.open_error, s.options.paths))
            err.display = True
            self.table.display = False
        text = notes(s)
        box = self.query_one("#notes", Static)
        box.update(text)
        box.display = bool(text)

    def _info(self) -> None:
        s = self.session
        t = Text()
        if s.open_error is not None:
            t.append("cannot open the input", style="bold red")
            self.query_one("#info", Static).update(t)
            return
        t.append(f"{s.n:,} rows", style="bold")
        if self._search is not None:
            frac, found = self._search
            t.append(f" · {SPINNER[self._spin % len(SPINNER)]} searching {frac:.0%}, {found:,} match so far", style="bold cyan")
        elif len(self.table.view) != s.n or not self._query.empty:
            t.append(f" · {len(self.table.view):,} match")
        if self.table.sort_key:
            t.append(f" · sorted by {self.table.sort_key} {'▼' if self.table.sort_desc else '▲'}")
        if s.decisions:
            t.append(f" · {len(s.decisions):,} decision(s)")
            if s.unexported:
                t.append(" not exported", style="yellow")
        for err in self._query.errors:
            t.append(f" · {err}", style="red")
        self.query_one("#info", Static).update(t)

    # --- filter and sort -------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(0.15, self.refilter)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.refilter()
        self.table.focus()

    def set_filter(self, text: str) -> None:
        self.query_one("#filter", Input).value = text
        self.refilter()

    def refilter(self, keep: bool = False) -> None:
        """Run the filter box's query again (a new one cancels the running search)."""
        self._query = query.parse(self.query_one("#filter", Input).value)
        self._generation += 1
        self._search = (0.0, 0) if self._query.text else None
        self._info()
        self._run_filter(self._query, self.table.sort_key, self.table.sort_desc, self._generation, keep)

    @work(thread=True, exclusive=True, group="filter", exit_on_error=False)
    def _run_filter(self, q: query.Query, key: str | None, desc: bool, generation: int, keep: bool, top: bool = False) -> None:
        worker = get_current_worker()
        stop = lambda: worker.is_cancelled  # the next keystroke's search cancels this one
        last = 0.0
        first = True
        for view, frac in query.run(self.session, q, stop=stop):
            if worker.is_cancelled:
                return
            now = time.perf_counter()
            if frac < 1.0 and now - last < STREAM_EVERY:
                continue
            last = now
            view = query.sort(self.session, view, key, desc)
            if worker.is_cancelled:
                return
            self.app.call_from_thread(self._show, view, frac, generation, first and not keep, top)
            first = False

    def _show(self, view: np.ndarray, frac: float, generation: int, first: bool, top: bool) -> None:
        if generation != self._generation:
            return  # a result of a query the user already replaced
        current = self.table.current_row
        self.table.set_view(view, keep_row=current, top=top)
        self._search = (frac, len(view)) if frac < 1.0 else None
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
        self._generation += 1
        self._search = (0.0, 0) if self._query.text else None
        self._run_filter(self._query, t.sort_key, t.sort_desc, self._generation, False, True)  # the top of the new order

    def action_cycle_sort(self) -> None:
        keys = [k for k in SORTABLE if k not in self.table.hidden]  # no sorting by a column that is not shown
        cur = self.table.sort_key or "row"
        nxt = keys[(keys.index(cur) + 1) % len(keys)] if cur in keys else "row"
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

    def go_to(self, row: int) -> None:
        """Put the cursor on ``row``; a filter that hides it is cleared first (and the screen says so)."""
        if self.table.move_to_row(row):
            return
        self.query_one("#filter", Input).value = ""
        if self._debounce is not None:
            self._debounce.stop()
        self._query = query.Query()
        self._generation += 1
        self._search = None
        view = query.sort(self.session, np.arange(self.session.n, dtype=np.int64), self.table.sort_key, self.table.sort_desc)
        self.table.set_view(view, keep_row=row)
        self.notify(f"row {row} was hidden by the filter: filter cleared")
        self._info()

    def action_next_finding(self) -> None:
        t = self.table
        rest = t.view[t.cursor + 1 :]
        hit = np.flatnonzero(query.flagged(self.session, self.session.n)[rest])
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
        self._redraw_notes()
        self._info()

    def action_undo(self) -> None:
        row = self.session.undo()
        if row is None:
            self.notify("nothing to undo")
            return
        self.table.move_to_row(row)
        self.table.refresh_rows()
        self._info()
