"""Findings grouped by code (placeholder until the full screen lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class FindingsScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("findings: coming")
        yield Footer()
