"""A table that materialises only the rows on screen (Textual's Line API), for millions of rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
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
    keep: int = 9  # when the table is too narrow, columns with the lowest ``keep`` are left out first


FLEX_MIN = 24  # the flexible column (findings) keeps at least this many cells before others go

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

    def __init__(self, columns: list[Column], cells: CellsFn, *, id: str | None = None, flex_min: int = FLEX_MIN) -> None:
        super().__init__(id=id)
        self.flex_min = flex_min
        self.columns = columns
        self.cells = cells
        self.view = np.empty(0, dtype=np.int64)
        self.sort_key: str | None = None
        self.sort_desc = False
        self.hidden: set[str] = set()  # columns the owner turned off (token columns without a tokenizer)
        self._frame: tuple[Any, ...] | None = None

    # --- data --------------------------------------------------------------------------------

    def set_view(self, view: np.ndarray, *, keep_row: int | None = None, top: bool = False) -> None:
        """Show these row ids; the cursor stays on ``keep_row`` when it is still shown, or goes to the top."""
        self.view = view
        self.virtual_size = Size(self._min_width(), len(view) + 1)
        pos = 0
        if keep_row is not None and len(view) and not top:
            hit = np.flatnonzero(view == keep_row)
            pos = int(hit[0]) if len(hit) else 0  # the row is gone: the top of the new view, not the same offset
        if top:
            self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor = pos
        self.refresh()

    @property
    def current_row(self) -> int | None:
        if 0 <= self.cursor < len(self.view):
            return int(self.view[self.cursor])
        return None

    def refresh_rows(self) -> None:
        self.refresh()

    def visible(self) -> list[int]:
        """Indexes of the columns shown at this width: the lowest-``keep`` ones go first when it is narrow."""
        shown = [i for i, c in enumerate(self.columns) if c.key not in self.hidden]
        width = self.size.width or 10**6

        def need(cols: list[int]) -> int:
            return sum(self.columns[i].width or self.flex_min for i in cols) + len(cols)

        while need(shown) > width and len(shown) > 2:
            drop = min((i for i in shown if self.columns[i].width), key=lambda i: self.columns[i].keep, default=None)
            if drop is None:
                break
            shown.remove(drop)
        return shown

    def _min_width(self) -> int:
        cols = self.visible()
        return sum(self.columns[i].width or 12 for i in cols) + len(cols)

    def _widths(self, cols: list[int]) -> list[int]:
        width = max(self.size.width, self._min_width())
        fixed = sum(self.columns[i].width for i in cols) + len(cols)
        return [self.columns[i].width or max(12, width - fixed) for i in cols]

    def on_resize(self) -> None:
        self.virtual_size = Size(self._min_width(), len(self.view) + 1)

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

    def render_lines(self, crop: Region) -> list[Strip]:
        # styles and column layout once per frame, not once per line (rich_style walks the DOM each time)
        cols = self.visible()
        self._frame = (
            cols, self._widths(cols), [self.columns[i].right for i in cols], self.rich_style,
            self.get_component_rich_style("vtable--header"), self.get_component_rich_style("vtable--cursor"),
            self.get_component_rich_style("vtable--odd"),
        )  # fmt: skip
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        frame = self._frame
        if frame is None:
            cols = self.visible()
            frame = (cols, self._widths(cols), [self.columns[i].right for i in cols], self.rich_style,
                     self.get_component_rich_style("vtable--header"), self.get_component_rich_style("vtable--cursor"),
                     self.get_component_rich_style("vtable--odd"))  # fmt: skip
        cols, widths, right, base, header, cursor, odd = frame
        if y == 0:
            style = base + header
            titles = []
            for c in (self.columns[i] for i in cols):
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
                style = base + cursor
            elif pos % 2:
                style = base + odd
            cells = self.cells(row)
            strip = self._line([cells[i] for i in cols], widths, style, right)
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
            cols = self.visible()
            for c, w in zip((self.columns[i] for i in cols), self._widths(cols), strict=False):
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
