"""One example: chat bubbles, the token view with trained tokens highlighted, the rendered template, its findings."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from workbench.console.mask import legend
from workbench.printable import visible
from workbench.records import Conversation, Reject
from workbench.tui.messages import DataChanged
from workbench.tui.query import flagged
from workbench.tui.session import Session
from workbench.tui.widgets.chat_view import ChatView, bubbles
from workbench.tui.widgets.row_cells import SEVERITY_STYLE, full_source
from workbench.tui.widgets.token_view import TokenView, pieces


def tools_text(tools: Any) -> Text:
    """The tool schemas a row declares, one line each: name(parameters) and description; the template gets them whole."""
    t = Text()
    if not isinstance(tools, list):
        return t
    t.append(f"⚒ {len(tools)} tool(s) passed to the chat template's `tools` argument\n", style="bold")
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        params = fn.get("parameters", {}) if isinstance(fn, dict) else {}
        names = list(params.get("properties", {})) if isinstance(params, dict) else []
        t.append(f"  {fn.get('name', '?')}", style="bold cyan")
        t.append(f"({', '.join(names)})")
        if fn.get("description"):
            t.append(f"  {fn['description']}", style="dim")
        t.append("\n")
    return t.rstrip() or t


class ExampleScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("n,right", "step(1)", "Next"),
        Binding("p,left", "step(-1)", "Previous"),
        Binding("f", "next_finding(1)", "Next finding"),
        Binding("F", "next_finding(-1)", "Prev finding", show=False),
        Binding("c", "tab('chat')", "Chat", show=False),
        Binding("t", "tab('tokens')", "Tokens", show=False),
        Binding("r", "tab('template')", "Template", show=False),
        Binding("k", "decide('keep')", "Keep"),
        Binding("x", "decide('drop')", "Drop"),
        Binding("u", "undo", "Undo"),
    ]

    def __init__(self, row: int, order: np.ndarray | None = None) -> None:
        super().__init__()
        self.row = row
        self.order = order
        self.result: Any = None  # the MaskResult shown, for tests and the template tab

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="ex-head")
        yield Static("", id="ex-findings")
        with TabbedContent(initial="chat", id="ex-tabs"):
            with TabPane("Chat", id="chat"):
                yield Static("", id="ex-tools")
                yield ChatView(id="ex-chat")
            with TabPane("Tokens", id="tokens"):  # noqa: SIM117 - Textual compose nesting
                with VerticalScroll(id="ex-token-scroll"):
                    yield Static(legend(), id="ex-legend")
                    yield Static("", id="ex-mask-notes")
                    yield TokenView(id="ex-tokens")
            with TabPane("Template", id="template"), VerticalScroll():
                yield Static("", id="ex-rendered")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.row)

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what != "rows":  # a tokenizer, tokens, checks or clusters arrived: redraw with them
            self.show(self.row)

    # --- drawing -----------------------------------------------------------------------------------

    def show(self, row: int) -> None:
        s = self.session
        assert s.rows is not None
        self.row = row
        item = s.item(row)
        self.result = None
        self._head(item)
        self._findings()
        chat = self.query_one("#ex-chat", ChatView)
        tools = self.query_one("#ex-tools", Static)
        tools.update(tools_text(item.meta.get("tools")) if isinstance(item, Conversation) else "")
        tools.display = bool(isinstance(item, Conversation) and item.meta.get("tools"))
        if isinstance(item, Conversation):
            chat.show(bubbles(item.messages))
            self._tokens(item)
        else:
            chat.show([Static(Text(visible(f"rejected ({item.reason}): {item.detail}\n\n{item.raw or ''}"), style="red"))])
            self._tokens(None)

    def _head(self, item: Conversation | Reject) -> None:
        s = self.session
        t = Text()
        pos = ""
        if self.order is not None:
            hit = np.flatnonzero(self.order == self.row)
            if len(hit):
                pos = f" ({int(hit[0]) + 1:,} of {len(self.order):,})"
        t.append(f"row {self.row}{pos}", style="bold")
        t.append(f"  {full_source(s, self.row)}", style="dim")
        own = s.rows.own_id(self.row) if s.rows is not None else None
        if own is not None:
            t.append(f"  id {own}", style="bold cyan")
        if isinstance(item, Conversation):
            t.append(f"  content id {item.id}", style="cyan")
            t.append(f"  {len(item.messages)} turns")
        tokens, trained = s.value("tokens", self.row), s.value("trained", self.row)
        if tokens is not None:
            t.append(f"  {trained}/{tokens} tokens trained")
        d = s.decision(self.row)
        if d:
            t.append(f"  decision: {d}", style="bold green" if d == "keep" else "bold red")
        elif not s.is_kept(self.row):
            t.append("  (removed)", style="red")
        self.query_one("#ex-head", Static).update(t)

    def _findings(self) -> None:
        """Every finding of the row, one line each (the box scrolls); template-wide facts are on the dataset screen."""
        s = self.session
        codes = s.codes_of(self.row)
        t = Text()
        if len(codes) > 1:
            t.append(f"{len(codes)} findings\n", style="bold")
        for code in codes:
            g = s.groups.get(code)
            sev = g.severity if g else "info"
            t.append(f"● {code}", style=SEVERITY_STYLE.get(sev, ""))
            if g is not None:
                t.append(f"  {g.message}")
                if g.hint:
                    t.append(f"  hint: {g.hint}", style="dim")
            t.append("\n")
        if not codes:
            t.append("no findings", style="green")
        self.query_one("#ex-findings", Static).update(t.rstrip() or t)

    def _tokens(self, conv: Conversation | None) -> None:
        s = self.session
        view = self.query_one("#ex-tokens", TokenView)
        notes = self.query_one("#ex-mask-notes", Static)
        rendered = self.query_one("#ex-rendered", Static)
        if conv is None:
            view.show([])
            notes.update("")
            rendered.update("")
            return
        if s.tokenizer is None:
            why = "no --model given" if s.options.model is None else "the tokenizer is not loaded (yet)"
            view.show([])
            notes.update(Text(f"token view needs a tokenizer: {why}", style="yellow"))
            rendered.update(Text(f"template render needs a tokenizer: {why}", style="yellow"))
            return
        from workbench.template import render_bounded

        res = render_bounded(s.tokenizer, conv, max_length=s.options.max_length)
        self.result = res
        if res.rendered is None:
            view.show([])
            notes.update(Text(visible(f"error: {res.error}"), style="bold red"))
            rendered.update(Text(visible(f"error: {res.error}"), style="bold red"))
            return
        r = res.rendered
        view.show(pieces(s.tokenizer, res))
        n = Text(f"{r.trained_count}/{len(r.input_ids)} tokens trained via {res.derivation.replace('_', ' ')}", style="bold")
        if res.length > len(r.input_ids):
            n.append(f"  truncated from {res.length} (--max-length)", style="yellow")
        if res.agree is False:
            n.append("  tags and render-diff DISAGREE", style="bold red")
        if res.disagreement:  # where they part, as `workbench mask` says it
            n.append(visible(f"\n{res.disagreement}"), style="bold red")
        for p in res.problems:
            n.append(visible(f"\nproblem: {p}"), style="red")
        for note in res.notes:
            n.append(visible(f"\nnote: {note}"), style="cyan")
        for where, text in dict.fromkeys(res.written):  # text the template writes and the mask trains (a <think> scaffold)
            what = "before an answer" if where == "before" else "by the generation tags, " + where.removeprefix("tags_") + " the turn"
            n.append(visible(f"\ntemplate text trained {what}: {text!r}"), style="cyan")
        if res.ok:
            n.append("\nverified: each trained region is one assistant turn, its answer closed by its end-of-turn token", style="green")
        notes.update(n)
        rendered.update(Text(visible(r.text)))

    # --- actions -----------------------------------------------------------------------------------

    def _order(self) -> np.ndarray:
        return self.order if self.order is not None else np.arange(self.session.n, dtype=np.int64)

    def _pos(self) -> int:
        hit = np.flatnonzero(self._order() == self.row)
        return int(hit[0]) if len(hit) else -1

    def action_step(self, delta: int) -> None:
        order, pos = self._order(), self._pos()
        nxt = pos + delta
        if 0 <= nxt < len(order):
            self.show(int(order[nxt]))
        else:
            self.notify("no more examples this way")

    def action_next_finding(self, direction: int) -> None:
        order, pos = self._order(), self._pos()
        flags = flagged(self.session, self.session.n)
        if direction > 0:
            hit = np.flatnonzero(flags[order[pos + 1 :]])
            nxt = pos + 1 + int(hit[0]) if len(hit) else None
        else:
            hit = np.flatnonzero(flags[order[:pos]]) if pos > 0 else np.empty(0)
            nxt = int(hit[-1]) if len(hit) else None
        if nxt is None:
            self.notify("no further example with a finding")
        else:
            self.show(int(order[nxt]))

    def action_tab(self, tab: str) -> None:
        self.query_one("#ex-tabs", TabbedContent).active = tab

    def action_decide(self, what: str) -> None:
        current = self.session.decision(self.row)
        self.session.decide(self.row, None if current == what else what)
        self._head(self.session.item(self.row))

    def action_undo(self) -> None:
        row = self.session.undo()
        if row is None:
            self.notify("nothing to undo")
        elif row == self.row:
            self._head(self.session.item(self.row))
        else:
            self.show(row)
