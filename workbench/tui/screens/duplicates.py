"""Duplicates: clusters largest first, a near-duplicate pair side by side, keep/drop per row with undo, save."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from workbench.records import Conversation
from workbench.tui.messages import DataChanged, OpenExample
from workbench.tui.session import Session
from workbench.tui.widgets.diff_view import DiffView
from workbench.tui.widgets.job_bar import JobBar
from workbench.tui.widgets.row_cells import short_source
from workbench.tui.widgets.virtual_table import Column, VirtualTable

MEMBER_COLUMNS = [
    Column("row", "#", 7, right=True),
    Column("state", "state", 14),
    Column("reason", "reason", 8),
    Column("similarity", "sim", 5, right=True),
    Column("source", "source", 18),
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
        Binding("d", "find", "Find duplicates"),
        Binding("left", "focus_clusters", "Clusters", show=False),
        Binding("right", "focus_members", "Members", show=False),
    ]
    DEFAULT_CSS = """
    DuplicatesScreen #dup-top { height: 14; }
    DuplicatesScreen #clusters { width: 40; height: 1fr; border: round $primary; }
    DuplicatesScreen #members { height: 1fr; }
    DuplicatesScreen #members { border: round $primary; }
    DuplicatesScreen #dup-info { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.cluster_ids: list[int] = []

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="dup-info")
        with Horizontal(id="dup-top"):
            yield OptionList(id="clusters")
            yield VirtualTable(MEMBER_COLUMNS, self._cells, id="members")
        yield DiffView(id="diff")
        yield JobBar()
        yield Footer()

    @property
    def members(self) -> VirtualTable:
        return self.query_one("#members", VirtualTable)

    def on_mount(self) -> None:
        self.query_one("#clusters", OptionList).border_title = "clusters, largest first"
        self.members.border_title = "kept row, then the rows removed in its place"
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what in ("dedup", "decisions"):
            self.reload()

    # --- clusters ---------------------------------------------------------------------------------

    def reload(self) -> None:
        s = self.session
        result = s.dedup_result
        ol = self.query_one("#clusters", OptionList)
        current = self.cluster_id
        ol.clear_options()
        if result is None:
            busy = "dedup" in s.jobs and not s.jobs["dedup"].finished
            self.cluster_ids = []
            self.query_one("#dup-info", Static).update(
                Text("finding duplicates…" if busy else "duplicates not computed yet: press d", style="yellow")
            )
            self.members.set_view(np.empty(0, dtype=np.int64))
            self.query_one("#diff", DiffView).clear()
            return
        clusters = sorted(result.clusters, key=lambda c: (-c.size, c.id))
        self.cluster_ids = [c.id for c in clusters]
        options = []
        for c in clusters:
            t = Text()
            t.append(f"#{c.id:<5}", style="bold")
            t.append(f"{c.size:>3} rows ", style="cyan")
            t.append(f"{','.join(sorted(c.reasons)):<11}", style="dim")
            t.append(" " + " ".join(_text(c.kept).split()))
            t.truncate(36, overflow="ellipsis")
            options.append(Option(t, id=str(c.id)))
        ol.add_options(options)
        counts = result.counts
        info = Text()
        info.append(f"{len(clusters):,} clusters", style="bold")
        info.append(f" · dedup keeps {counts['kept']:,} of {counts['read']:,}, removes {counts['removed']:,}")
        info.append(f" (exact {counts.get('exact', 0):,}, near {counts.get('near', 0):,})")
        if s.decisions:
            info.append(f" · {len(s.decisions)} decision(s) by hand", style="bold yellow")
        self.query_one("#dup-info", Static).update(info)
        if clusters:
            index = self.cluster_ids.index(current) if current in self.cluster_ids else 0
            ol.highlighted = index
            self.show_cluster(self.cluster_ids[index])
            if not self.members.has_focus:
                ol.focus()
        else:
            self.members.set_view(np.empty(0, dtype=np.int64))
            self.query_one("#diff", DiffView).clear("no duplicates found")

    @property
    def cluster_id(self) -> int | None:
        ol = self.query_one("#clusters", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.cluster_ids):
            return None
        return self.cluster_ids[ol.highlighted]

    def member_rows(self) -> list[int]:
        return [int(r) for r in self.members.view]

    def show_cluster(self, cid: int) -> None:
        s = self.session
        result = s.dedup_result
        cluster = next((c for c in result.clusters if c.id == cid), None)
        if cluster is None:
            return
        rows = [s.dedup_rows[cluster.kept_row]] + [s.dedup_rows[m] for m in cluster.members]
        keep = self.members.current_row
        self.members.set_view(np.asarray(rows, dtype=np.int64), keep_row=keep if keep in rows else None)
        self._diff()

    @on(OptionList.OptionHighlighted, "#clusters")
    def _cluster_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.show_cluster(int(event.option.id))

    @on(OptionList.OptionSelected, "#clusters")
    def _cluster_selected(self, event: OptionList.OptionSelected) -> None:
        self.members.focus()

    # --- members ----------------------------------------------------------------------------------

    def _cells(self, row: int) -> list[Text | str]:
        s = self.session
        rm = s.dedup_removed.get(row)
        auto = "removed" if rm is not None else "kept"
        d = s.decision(row)
        if d is None:
            state = Text(auto, style="red" if rm is not None else "green")
        else:
            state = Text(f"{auto}→{d}", style="bold green" if d == "keep" else "bold red")
        item = s.rows.item(row)  # type: ignore[union-attr]
        preview = " ".join(_text(item).split()) if isinstance(item, Conversation) else ""
        return [
            str(row),
            state,
            rm.reason if rm is not None else "",
            f"{rm.similarity:.2f}" if rm is not None else "",
            short_source(s, row),
            preview,
        ]

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
        a, b = s.rows.item(kept), s.rows.item(other)  # type: ignore[union-attr]
        if not (isinstance(a, Conversation) and isinstance(b, Conversation)):
            return
        rm = s.dedup_removed.get(other)
        sim = f", similarity {rm.similarity:.2f}" if rm is not None else ""
        view.show(f"kept: row {kept} ({short_source(s, kept)})", _text(a),
                  f"{rm.reason if rm else 'member'}: row {other} ({short_source(s, other)}{sim})", _text(b))  # fmt: skip

    @on(VirtualTable.Selected, "#members")
    def _open(self, event: VirtualTable.Selected) -> None:
        self.post_message(OpenExample(event.row, self.members.view))

    # --- actions ------------------------------------------------------------------------------------

    def action_decide(self, what: str) -> None:
        row = self.members.current_row
        if row is None:
            self.notify("no row selected")
            return
        current = self.session.decision(row)
        self.session.decide(row, None if current == what else what)
        self.members.refresh_rows()
        self.reload_info()

    def action_undo(self) -> None:
        row = self.session.undo()
        if row is None:
            self.notify("nothing to undo")
            return
        if not self.members.move_to_row(row):
            cid = int(self.session.cluster[row])
            if cid in self.cluster_ids:
                self.query_one("#clusters", OptionList).highlighted = self.cluster_ids.index(cid)
                self.show_cluster(cid)
                self.members.move_to_row(row)
        self.members.refresh_rows()
        self.reload_info()

    def reload_info(self) -> None:
        self.reload()

    def action_save(self) -> None:
        self.app.action_export()  # type: ignore[attr-defined]

    def action_find(self) -> None:
        self.app.find_duplicates()  # type: ignore[attr-defined]
        self.reload()

    def action_focus_clusters(self) -> None:
        self.query_one("#clusters", OptionList).focus()

    def action_focus_members(self) -> None:
        self.members.focus()
