"""Histograms (placeholder until the full screen lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class StatsScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("stats: coming")
        yield Footer()
