"""The key bindings, on `?`."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

KEYS = """\
# workbench tui: keys

| where | key | does |
| --- | --- | --- |
| everywhere | `1` `2` `3` `4` | dataset, findings, duplicates, stats |
| | `e` | export the curated set (kept rows + removed side file) |
| | `:` `g` | go to a row number, `file:line`, `:line` or an id |
| | `ctrl+p` | command palette: every action, quick filters |
| | `?` | this help; `q` quits |
| dataset | `↑` `↓` `pgup` `pgdn` `home` `end` | move; `enter` (or a click) opens the example |
| | `/` | filter box (`escape` back to the table) |
| | `s` / `S` | sort by the next column / reverse (or click a header) |
| | `f` | next row with a finding |
| | `k` / `x` / `u` | keep / drop the row (again to clear) / undo |
| example | `n` `p` (`→` `←`) | next / previous example in the current order |
| | `f` / `F` | next / previous example with a finding |
| | `c` `t` `r` | chat, tokens, rendered template |
| | `k` / `x` / `u` | keep / drop / undo; `escape` back |
| findings | `enter` | a code's examples; `enter` again opens one |
| duplicates | `k` / `x` / `u` | keep / drop the member / undo |
| | `ctrl+s` | save kept + removed exactly as `workbench dedup` writes them |
| | `d` | run duplicate detection again |
| stats | `r` | redraw from the columns filled so far |

Filter syntax: free text (searched in the raw rows, and in content ids), `role:tool`, `code:CODE`
(a prefix is enough), `is:error` / `is:warning` (any finding of that severity), `is:long` (over
--max-length), `is:no-eos`, `is:zero` (no trained token), `is:dup`, `is:reject`, `is:render-error`,
`is:flagged`, `is:dropped`, `is:kept`, `cluster:N`, `id:ID` (content id or the row's own id).
Conditions combine with AND; `-key:value` negates one. A search runs in the background: keep typing.

Decisions are saved as you make them in `<data file>.workbench-decisions.jsonl` and come back when
the file is opened again; findings true of the whole template are shown once above the table.

Token view: trained tokens bright on green, untrained dim, special tokens bold magenta
(yellow when trained); backgrounds alternate per token so boundaries show; `·` space, `↵` newline.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 96; height: 90%; border: thick $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(KEYS)
