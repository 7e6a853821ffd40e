"""Stats: token-length and trained-token histograms (plotext), role and turn counts, rows over max length."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import polars as pl
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plotext import PlotextPlot

from workbench.records import ROLES
from workbench.data import describe, histogram
from workbench.tui.messages import DataChanged
from workbench.tui.session import NO_EOS, OVER, REJECT, RENDER_ERROR, ZERO, Session
from workbench.tui.widgets.job_bar import JobBar

BINS = 20


class StatsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "redraw", "Redraw")]
    DEFAULT_CSS = """
    StatsScreen #plots { height: 1fr; }
    StatsScreen PlotextPlot { width: 1fr; height: 1fr; }
    StatsScreen #stats-scroll { height: auto; max-height: 16; }
    """

    @property
    def session(self) -> Session:
        return self.app.session  # type: ignore[attr-defined,no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="plots"):
            yield PlotextPlot(id="hist-length")
            yield PlotextPlot(id="hist-trained")
        with VerticalScroll(id="stats-scroll"):
            yield Static("", id="stats-summary")
        yield JobBar()
        yield Footer()

    def on_mount(self) -> None:
        self.action_redraw()

    def on_screen_resume(self) -> None:
        self.action_redraw()

    def on_data_changed(self, message: DataChanged) -> None:
        if message.what != "rows":
            self.action_redraw()

    def _known(self, name: str) -> np.ndarray:
        col = self.session.cols.get(name)
        if col is None:
            return np.empty(0, dtype=np.int64)
        return col[col >= 0]

    def _plot(self, widget_id: str, values: np.ndarray, title: str, xlabel: str, vline: int | None = None) -> None:
        plot = self.query_one(widget_id, PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        plt.ylabel("examples")
        # clipped at p99 as `workbench stats` does: one outlier must not squash every other bar into one
        bins = histogram(pl.Series(values, dtype=pl.Int64), bins=BINS, clip=0.99) if len(values) else []
        if bins:
            # bars at bin positions with explicit integer tick labels: plotext's own ticks are not stable
            counts = [c for _, _, c in bins]
            plt.bar(list(range(len(bins))), counts, width=0.9, color="cyan")
            step = max(1, len(bins) // 5)
            ticks = list(range(0, len(bins), step))
            labels = [f"{bins[i][0]:.0f}" for i in ticks]
            if math.isinf(bins[-1][1]):
                plt.title(f"{title}; last bar: {bins[-1][2]:,} above p99")
                ticks.append(len(bins) - 1)
                labels.append(f">{bins[-1][0]:.0f}")
            plt.xticks(ticks, labels)
            finite = [b for b in bins if not math.isinf(b[1])]
            if vline is not None and finite and finite[0][0] <= vline <= finite[-1][1]:
                width = (finite[-1][1] - finite[0][0]) / len(finite) or 1.0
                plt.vline((vline - finite[0][0]) / width - 0.5, "red")
        plot.refresh()

    def action_redraw(self) -> None:
        s = self.session
        tokens = self._known("tokens")
        have_tokens = len(tokens) > 0
        length = tokens if have_tokens else self._known("chars")
        unit = "tokens" if have_tokens else "characters"
        ml = s.options.max_length if have_tokens else None
        self._plot("#hist-length", length, f"{unit} per example ({len(length):,} rows)", unit, ml)
        if have_tokens:
            trained = self._known("trained")
            self._plot("#hist-trained", trained, f"trained tokens per example ({len(trained):,} rows)", "trained tokens")
        else:
            why = "no --model" if s.options.model is None else "tokenising…"
            self._plot("#hist-trained", np.empty(0), f"trained tokens ({why})", "trained tokens")
        self.query_one("#stats-summary", Static).update(self._summary())

    def _summary(self) -> Table:
        s = self.session
        grid = Table.grid(padding=(0, 3))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_column(style="bold")
        grid.add_column()
        turns = self._known("turns")
        flags = s.flags
        rows = [
            ("rows", f"{s.n:,}" + ("" if s.scanned else " (reading…)")),
            ("rejected", f"{int(np.count_nonzero(flags & REJECT)):,}"),
            ("turns by role", "  ".join(f"{r} {s.role_turns.get(r, 0):,}" for r in ROLES)),
            ("rows with", "  ".join(f"{r} {int(np.count_nonzero(s.roles & (1 << i))):,}" for i, r in enumerate(ROLES))),
        ]
        if len(turns):
            values, counts = np.unique(turns, return_counts=True)
            rows.append(("turns per row", "  ".join(f"{v}: {c:,}" for v, c in zip(values[:12], counts[:12], strict=True))))
        for name in ("chars", "tokens", "trained"):
            known = self._known(name)
            if len(known):
                d = describe(pl.Series(known))
                rows.append((name, f"min {d['min']}  p50 {d['p50']:.0f}  p90 {d['p90']:.0f}  p99 {d['p99']:.0f}  max {d['max']}  mean {d['mean']}"))
        if s.options.model:
            ml = s.options.max_length
            over = f"{int(np.count_nonzero(flags & OVER)):,}" if ml else "(no --max-length)"
            rows.append((f"over max length {ml or ''}".strip(), over))
            rows.append(("zero trained tokens", f"{int(np.count_nonzero(flags & ZERO)):,}"))
            rows.append(("EOS not trained", f"{int(np.count_nonzero(flags & NO_EOS)):,}"))
            rows.append(("render errors", f"{int(np.count_nonzero(flags & RENDER_ERROR)):,}"))
            tokens, trained = self._known("tokens"), self._known("trained")
            if len(tokens) and tokens.sum():
                rows.append(("trained share", f"{trained.sum() / tokens.sum():.1%} of {int(tokens.sum()):,} tokens"))
        for i in range(0, len(rows), 2):
            a = rows[i]
            b = rows[i + 1] if i + 1 < len(rows) else ("", "")
            grid.add_row(a[0], Text(a[1]), b[0], Text(b[1]))
        return grid
