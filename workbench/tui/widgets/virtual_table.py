"""A table that materialises only the rows on screen (Textual's Line API), for millions of rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.printable import visible


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # 0: take the remaining width
    right: bool = False


CellsFn = Callable[[int], list[Text | str]]


class VirtualTable(ScrollView, can_focus=True):
    """Rows are positions in ``view`` (an array of row ids); ``cells(row)`` draws one on demand."""

    DEFAULT_CSS = """
    VirtualTable { height: 1fr; }
    VirtualTable > .vtable--header { background: $panel; color: $text; text-style: bold; }
    VirtualTable > .vtable--cursor { background: $accent 40%; }
    VirtualTable:focus > .vtable--cursor { background: $accent; color: $text; }
    VirtualTable > .vtable--odd { background: $surface-lighten-1 20%; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"vtable--header", "vtable--cursor", "vtable--odd"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Open", show=True),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    @dataclass
    class Highlighted(Message):
        table: VirtualTable

        @property
        def control(self) -> VirtualTable:
            return self.table

        row: int  # row id, not position

    @dataclass
    class Selected(Message):
        table: VirtualTable

        @property
        def control(self) -> VirtualTable:
            return self.table

        row: int

    @dataclass
    class HeaderClicked(Message):
        table: VirtualTable

        @property
        def control(self) -> VirtualTable:
            return self.table

        column: str

    def __init__(self, columns: list[Column], cells: CellsFn, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.cells = cells
        self.view = np.empty(0, dtype=np.int64)
        self.sort_key: str | None = None
        self.sort_desc = False

    # --- data --------------------------------------------------------------------------------

    def set_view(self, view: np.ndarray, *, keep_row: int | None = None) -> None:
        """Show these row ids; the cursor stays on ``keep_row`` when it is still shown."""
        self.view = view
        self.virtual_size = Size(self._min_width(), len(view) + 1)
        pos = 0
        if keep_row is not None and len(view):
            hit = np.flatnonzero(view == keep_row)
            pos = int(hit[0]) if len(hit) else min(self.cursor, len(view) - 1)
        self.cursor = pos
        self.refresh()

    @property
    def current_row(self) -> int | None:
        if 0 <= self.cursor < len(self.view):
            return int(self.view[self.cursor])
        return None

    def refresh_rows(self) -> None:
        self.refresh()

    def _min_width(self) -> int:
        return sum(c.width or 12 for c in self.columns) + len(self.columns)

    def _widths(self) -> list[int]:
        width = max(self.size.width, self._min_width())
        fixed = sum(c.width for c in self.columns) + len(self.columns)
        return [c.width or max(12, width - fixed) for c in self.columns]

    # --- drawing -------------------------------------------------------------------------------

    def _line(self, cells: list[Text | str], widths: list[int], style: Style, right: list[bool]) -> Strip:
        segments: list[Segment] = []
        for cell, w, r in zip(cells, widths, right, strict=False):
            text = cell if isinstance(cell, Text) else Text(str(cell))
            if visible(text.plain, newlines=False) != text.plain:  # data in a cell: no control character reaches the terminal
                text = Text(visible(text.plain, newlines=False), style=text.style)
            text = text.copy()
            text.truncate(w, overflow="ellipsis", pad=False)
            pad = w - text.cell_len
            if r:
                segments.append(Segment(" " * pad, style))
            segments.extend(
                Segment(seg.text, style + seg.style if seg.style else style) for seg in text.render(self.app.console)
            )
            if not r:
                segments.append(Segment(" " * pad, style))
            segments.append(Segment(" ", style))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        widths = self._widths()
        right = [c.right for c in self.columns]
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("vtable--header")
            titles = []
            for c in self.columns:
                mark = ""
                if c.key == self.sort_key:
                    mark = " ▼" if self.sort_desc else " ▲"
                titles.append(c.title + mark)
            strip = self._line(titles, widths, style, right)
        else:
            pos = scroll_y + y - 1
            if pos >= len(self.view):
                return Strip.blank(width, base)
            row = int(self.view[pos])
            style = base
            if pos == self.cursor:
                style = base + self.get_component_rich_style("vtable--cursor")
            elif pos % 2:
                style = base + self.get_component_rich_style("vtable--odd")
            strip = self._line(self.cells(row), widths, style, right)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    # --- movement ------------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if not len(self.view):
            return
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False, immediate=True)
        self.refresh()
        row = self.current_row
        if row is not None:
            self.post_message(self.Highlighted(self, row))

    def _clamp(self, pos: int) -> int:
        return max(0, min(pos, len(self.view) - 1))

    def action_move(self, delta: int) -> None:
        self.cursor = self._clamp(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.cursor = self._clamp(self.cursor + direction * max(1, self.size.height - 2))

    def action_jump(self, pos: int) -> None:
        self.cursor = self._clamp(pos if pos >= 0 else len(self.view) - 1)

    def action_select(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Selected(self, row))

    def move_to_row(self, row: int) -> bool:
        hit = np.flatnonzero(self.view == row)
        if len(hit):
            self.cursor = int(hit[0])
            return True
        return False

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + int(self.scroll_x)
            for c, w in zip(self.columns, self._widths(), strict=False):
                if x < w + 1:
                    self.post_message(self.HeaderClicked(self, c.key))
                    return
                x -= w + 1
            return
        pos = int(self.scroll_y) + offset.y - 1
        if 0 <= pos < len(self.view):
            again = pos == self.cursor
            self.cursor = pos
            if again or event.chain >= 2:
                self.action_select()
