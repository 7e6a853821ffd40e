"""Duplicates: clusters largest first, a near-duplicate pair side by side, keep/drop per row with undo, save.

Both lists are virtual tables over arrays the dedup pass built once (`clusters.Dupes`), so opening
the screen never recomputes anything, and a decision redraws only the lines on screen.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from workbench.records import Conversation
from workbench.tui.clusters import Dupes
from workbench.tui.messages import DataChanged, OpenExample
from workbench.tui.session import Session
from workbench.tui.widgets.diff_view import DiffView
from workbench.tui.widgets.job_bar import JobBar
from workbench.tui.widgets.row_cells import short_source
from workbench.tui.widgets.virtual_table import Column, VirtualTable

CLUSTER_COLUMNS = [
    Column("cluster", "#", 6, right=True, keep=9),
    Column("size", "rows", 5, right=True, keep=8),
    Column("hand", "hand", 4, right=True, keep=3),
    Column("text", "kept row", 0),
]
MEMBER_COLUMNS = [
    Column("row", "#", 7, right=True, keep=9),
    Column("state", "state", 14, keep=8),
    Column("reason", "reason", 8, keep=5),
    Column("similarity", "sim", 5, right=True, keep=4),
    Column("source", "line file", 16, keep=6),
    Column("text", "text", 0),
]


def _text(conv: Conversation) -> str:
    from workbench.dedup import text_view

    return text_view(conv, "conversation")


class DuplicatesScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "decide('keep')", "Keep"),
        Binding("x", "decide('drop')", "Drop"),
        Binding("u", "undo", "Undo"),
        Binding("ctrl+s", "save", "Save"),
        Binding("d", "find", "Find again"),
        Binding("left", "focus_clusters", "Clusters", show=False),
        Binding("right", "focus_members", "Members", show=False),
    ]
    DEFAULT_CSS = """
    DuplicatesScreen #dup-top { height: 14; }
    DuplicatesScreen #clusters { width: 2fr; max-width: 44; height: 1fr; border: round $primary; }
    DuplicatesScreen #members { width: 3fr; height: 1fr; border: round $primary; }
    DuplicatesScreen #dup-info { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: Dupes | None = None  # the dedup run the lists were built from

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="dup-info")
        with Horizontal(id="dup-top"):
            yield VirtualTable(CLUSTER_COLUMNS, self._cluster_cells, id="clusters", flex_min=12)
            yield VirtualTable(MEMBER_COLUMNS, self._cells, id="members", flex_min=8)  # state before text
        yield DiffView(id="diff")
        yield JobBar()
        yield Footer()

    @property
    def members(self) -> VirtualTable:
        return self.query_one("#members", VirtualTable)

    @property
    def clusters(self) -> VirtualTable:
        return self.query_one("#clusters", VirtualTable)

    def on_mount(self) -> None:
        self.clusters.border_title = "clusters, largest first"
        self.members.border_title = "kept row, then the rows removed in its place"
        self.set_interval(0.5, self._tick)
        self.reload()

    def _tick(self) -> None:
        if self.session.dupes is None:
            self._info()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what == "dedup":
            self.reload()
        elif message.what in ("decisions", "scan", "skipped"):
            self._refresh()

    # --- clusters ---------------------------------------------------------------------------------

    def reload(self) -> None:
        """Show the current dedup run: the arrays are ready, so this is instant; only a new run resets the lists."""
        d = self.session.dupes
        if d is None:
            self._shown = None
            self.clusters.set_view(np.empty(0, dtype=np.int64))
            self.members.set_view(np.empty(0, dtype=np.int64))
            self.query_one("#diff", DiffView).clear()
        elif d is not self._shown:
            self._shown = d
            self.clusters.set_view(d.order)
            if len(d.order):
                self.show_cluster(int(d.order[0]))
                if not self.members.has_focus:
                    self.clusters.focus()
            else:
                self.members.set_view(np.empty(0, dtype=np.int64))
                self.query_one("#diff", DiffView).clear("no duplicates found")
        self._refresh()

    def _refresh(self) -> None:
        self.clusters.refresh_rows()
        self.members.refresh_rows()
        self._info()

    def _info(self) -> None:
        s = self.session
        d = s.dupes
        info = Text()
        if d is None:
            job = s.jobs.get("dedup")
            if "duplicates" in s.skipped:
                info.append(f"duplicates not computed: {s.skipped['duplicates']}; press d to try again", style="yellow")
            elif job is not None and not job.finished:
                pct = f" {100 * job.done // job.total}%" if job.total else ""
                info.append(f"finding duplicates…{pct}", style="yellow")
            elif not s.scanned:
                info.append(f"reading rows ({s.jobs['scan'].done if 'scan' in s.jobs else 0:,} so far); duplicates run next", style="yellow")
            else:
                info.append("duplicates not computed yet: press d", style="yellow")
            self.query_one("#dup-info", Static).update(info)
            return
        c = d.counts
        info.append(f"{len(d.order):,} clusters", style="bold")
        info.append(f" · dedup keeps {c.get('kept', 0):,} of {c.get('read', 0):,}, removes {c.get('removed', 0):,}")
        by = ", ".join(f"{r} {c.get(r, 0):,}" for r in d.reasons if c.get(r))
        if by:
            info.append(f" ({by})")
        if s.decisions:
            info.append(f" · {len(s.decisions):,} decision(s) by hand", style="bold yellow")
        self.query_one("#dup-info", Static).update(info)

    def _cluster_cells(self, cid: int) -> list[Text | str]:
        s = self.session
        d = s.dupes
        if d is None:
            return ["", "", "", ""]
        rows = d.rows(cid)
        hand = sum(1 for r in rows if r in s.decisions)
        kept = rows[0] if rows else None
        item = s.item(kept) if kept is not None else None
        preview = " ".join(_text(item).split()) if isinstance(item, Conversation) else ""
        return [str(cid), str(len(rows)), str(hand) if hand else "", preview]

    @property
    def cluster_id(self) -> int | None:
        row = self.clusters.current_row
        return int(row) if row is not None else None

    def member_rows(self) -> list[int]:
        return [int(r) for r in self.members.view]

    def show_cluster(self, cid: int) -> None:
        d = self.session.dupes
        if d is None:
            return
        rows = d.rows(cid)
        keep = self.members.current_row
        self.members.set_view(np.asarray(rows, dtype=np.int64), keep_row=keep if keep in rows else None)
        self._diff()

    @on(VirtualTable.Highlighted, "#clusters")
    def _cluster_highlighted(self, event: VirtualTable.Highlighted) -> None:
        self.show_cluster(event.row)

    @on(VirtualTable.Selected, "#clusters")
    def _cluster_selected(self, event: VirtualTable.Selected) -> None:
        self.members.focus()

    # --- members ----------------------------------------------------------------------------------

    def _cells(self, row: int) -> list[Text | str]:
        s = self.session
        d = s.dupes
        why = d.reason_of(row) if d is not None else None
        auto = "removed" if why is not None else "kept"
        choice = s.decision(row)
        if choice is None:
            state = Text(auto, style="red" if why is not None else "green")
        else:
            state = Text(f"{auto}→{choice}", style="bold green" if choice == "keep" else "bold red")
        item = s.item(row)
        preview = " ".join(_text(item).split()) if isinstance(item, Conversation) else ""
        sim = f"{float(d.similarity[row]):.2f}" if d is not None and why is not None else ""
        return [str(row), state, why or "", sim, short_source(s, row), preview]

    @on(VirtualTable.Highlighted, "#members")
    def _member_highlighted(self, event: VirtualTable.Highlighted) -> None:
        self._diff()

    def _diff(self) -> None:
        rows = self.member_rows()
        view = self.query_one("#diff", DiffView)
        if len(rows) < 2:
            view.clear()
            return
        s = self.session
        kept = rows[0]
        other = self.members.current_row
        if other is None or other == kept:
            other = rows[1]
        a, b = s.item(kept), s.item(other)
        if not (isinstance(a, Conversation) and isinstance(b, Conversation)):
            return
        d = s.dupes
        why = d.reason_of(other) if d is not None else None
        sim = f", similarity {float(d.similarity[other]):.2f}" if d is not None and why is not None else ""
        view.show(f"kept: row {kept} ({short_source(s, kept)})", _text(a),
                  f"{why or 'member'}: row {other} ({short_source(s, other)}{sim})", _text(b))  # fmt: skip

    @on(VirtualTable.Selected, "#members")
    def _open(self, event: VirtualTable.Selected) -> None:
        self.post_message(OpenExample(event.row, self.members.view))

    # --- actions ------------------------------------------------------------------------------------

    def action_decide(self, what: str) -> None:
        """Keep or drop the member under the cursor: saved at once, and only the lines on screen redraw."""
        row = self.members.current_row
        if row is None:
            self.notify("no row selected")
            return
        current = self.session.decision(row)
        self.session.decide(row, None if current == what else what)
        self._refresh()

    def action_undo(self) -> None:
        s = self.session
        row = s.undo()
        if row is None:
            self.notify("nothing to undo")
            return
        if not self.members.move_to_row(row) and s.dupes is not None:
            cid = int(s.dupes.cluster_of[row])
            if cid and self.clusters.move_to_row(cid):
                self.show_cluster(cid)
                self.members.move_to_row(row)
        self._refresh()

    def action_save(self) -> None:
        self.app.action_export()  # type: ignore[attr-defined]

    def action_find(self) -> None:
        self.app.find_duplicates()  # type: ignore[attr-defined]
        self._info()

    def action_focus_clusters(self) -> None:
        self.clusters.focus()

    def action_focus_members(self) -> None:
        self.members.focus()
