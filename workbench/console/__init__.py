"""The CLI's terminal layer: rich consoles (stdout for data, stderr for people), errors, progress."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from workbench.errors import WorkbenchError
from workbench.printable import visible

out = Console(soft_wrap=True)  # data and results
err = Console(stderr=True)  # messages, progress, errors

ProgressFn = Callable[[int, "int | None"], None]


def print_error(e: WorkbenchError) -> None:
    """``error: message`` and ``hint: ...`` on stderr: text as written (never markup), control
    characters escaped, and never wrapped, so a log keeps each on one line."""
    err.print(Text("error: ", style="bold red") + Text(visible(e.message)), highlight=False, soft_wrap=True)
    if e.hint:
        err.print(Text("hint: ", style="yellow") + Text(visible(e.hint)), highlight=False, soft_wrap=True)


def say(console: Console, text: str, style: str = "") -> None:
    """Print a line that holds paths or data: no markup read from it, control characters escaped, not wrapped."""
    console.print(Text(visible(text), style=style), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[ProgressFn]:
    """A rich progress bar on stderr when stderr is a terminal; a no-op callback otherwise.

    Yields ``update(done, total)``: core functions call it with absolute counts.
    """
    if not sys.stderr.isatty():
        yield lambda done, total=None: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.update(task, completed=done)

        yield update


def quiet_libraries() -> None:
    """Silence third-party notices that say nothing to act on, so progress and findings stay readable."""
    import logging
    import warnings

    # bitsandbytes tries an optional CPU kernel package on import and logs when it is absent; its fallback is used
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # peft calls a transformers method that transformers has renamed; nothing for a user to change
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
