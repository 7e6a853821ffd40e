"""One line of background-work progress: indexing, reading, tokenising, checks, duplicates."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.tui.session import Session


def describe(session: Session) -> Text:
    t = Text()
    for job in list(session.jobs.values()):
        if job.finished:
            continue
        if t:
            t.append("  ")
        if job.total:
            pct = min(100, int(100 * job.done / job.total))
            filled = pct // 10
            t.append(f"{job.label} ", style="bold")
            t.append("█" * filled + "░" * (10 - filled), style="cyan")
            t.append(f" {pct}%")
        else:
            t.append(f"{job.label}… {job.done:,}", style="bold")
    return t


class JobBar(Static):
    """Polls the session a few times a second while something runs; hides itself when idle."""

    DEFAULT_CSS = "JobBar { height: 1; padding: 0 1; background: $boost; }"

    def on_mount(self) -> None:
        self._tick()
        self.set_interval(0.25, self._tick)

    def _tick(self) -> None:
        session: Session = self.app.session  # type: ignore[attr-defined]
        text = describe(session)
        self.display = bool(text)
        self.update(text)
