"""What the screens say above their tables: template-wide findings, passes that did not run, decisions not saved, input errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from workbench.errors import WorkbenchError
from workbench.tui.session import Session

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
PASS_NAMES = {"tokens": "token columns", "checks": "template checks", "duplicates": "duplicates"}


def notes(s: Session) -> Text:
    """One line per fact worth a glance before the rows; empty when there is nothing to say."""
    t = Text()

    def line() -> None:
        if t:
            t.append("\n")

    for g in s.wide_groups():
        line()
        n = g.count if g.count is not None else len(g.rows)
        t.append("template: ", style="bold")
        t.append(g.code, style=SEVERITY_STYLE.get(g.severity, ""))
        t.append(f" ({g.severity}, {n:,} rows, shown once here; code:{g.code} lists them) ", style="dim")
        t.append(g.message)
    seen: set[str] = set()
    for what, why in s.skipped.items():
        if why in seen:  # tokens and checks skipped for one reason: say it once
            continue
        seen.add(why)
        names = " and ".join(PASS_NAMES.get(w, w) for w, y in s.skipped.items() if y == why)
        line()
        t.append(f"not run: {names}", style="bold yellow")
        t.append(f" ({why})", style="yellow")
    if s.log.error:
        line()
        t.append(s.log.error, style="bold red")
    if s.unmatched:
        line()
        t.append(f"{len(s.unmatched):,} saved decision(s) match no row any more (the file changed); "
                 f"they stay in {s.log.path}", style="yellow")  # fmt: skip
    return t


def error_text(e: Any, paths: Sequence[str]) -> Text:
    """An input that cannot be opened, said where the table would be."""
    t = Text(f"cannot open {', '.join(paths)}\n\n", style="bold red")
    if isinstance(e, WorkbenchError):
        t.append(e.message, style="red")
        if e.hint:
            t.append(f"\n\nhint: {e.hint}", style="yellow")
    else:
        t.append(f"{type(e).__name__}: {e}", style="red")
    t.append("\n\nq quits.", style="dim")
    return t
