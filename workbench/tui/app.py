"""The app shell: modes (one per screen), global keys, command palette entries, and the background passes."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.errors import WorkbenchError
from workbench.tui.messages import DataChanged, OpenExample
from workbench.tui.session import Options, Session



SWITCH_INTERVAL = 0.001


def _screen(module: str, name: str) -> Screen[Any]:
    """A mode's screen, its module imported only when the mode is first shown."""
    from importlib import import_module

    return getattr(import_module(f"workbench.tui.screens.{module}"), name)()  # type: ignore[no-any-return]


class WorkbenchApp(App[None]):
    """`workbench tui`: look at a dataset the way the trainer will see it, decide, export."""

    TITLE = "workbench"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "dataset": lambda: _screen("dataset", "DatasetScreen"),
        "findings": lambda: _screen("findings", "FindingsScreen"),
        "duplicates": lambda: _screen("duplicates", "DuplicatesScreen"),
        "stats": lambda: _screen("stats", "StatsScreen"),
    }
    DEFAULT_MODE = "dataset"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('dataset')", "Dataset"),
        Binding("2", "switch_mode('findings')", "Findings"),
        Binding("3", "switch_mode('duplicates')", "Duplicates"),
        Binding("4", "switch_mode('stats')", "Stats"),
        Binding("e", "export", "Export"),
        Binding("colon,g", "goto", "Go to", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, options: Options, *, autorun: bool = True) -> None:
        super().__init__()
        self.session = Session(options)
        self.autorun = autorun  # tests turn the background passes off to drive them by hand
        self.tokenizer_ready = threading.Event()
        self.first_rows_at: float | None = None  # when the first rows were on screen (bench)
        self.started_at = time.perf_counter()
        self.sub_title = ", ".join(options.paths)

    def on_mount(self) -> None:
        # the passes are Python threads: hand the interpreter back to the UI thread every 1 ms rather than 5,
        # so a key waits on a busy pass for at most a few switches
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            self.session.open()
        except WorkbenchError as e:
            self.session.errors.append("open")
            self.session.open_error = e  # the screens show it in place of the table
            self.screen.post_message(DataChanged("error"))
            return
        if self.autorun:
            self.load_tokenizer()
            self.analyse()
        self.warm_up()

    @work(thread=True, group="warm", exit_on_error=False)
    def warm_up(self) -> None:
        """Import what the first search needs now, not when the user types (a second or more under load)."""
        import polars  # noqa: F401
        import pyarrow  # noqa: F401

    def show_error(self, e: BaseException, title: str = "error") -> None:
        if isinstance(e, WorkbenchError):
            text = e.message + (f"\nhint: {e.hint}" if e.hint else "")
        else:
            lines = str(e).strip().splitlines()
            text = f"{type(e).__name__}: {lines[0] if lines else ''}"
        self.notify(text, title=title, severity="error", timeout=15, markup=False)

    def changed(self, what: str) -> None:
        """From a worker thread: tell the current screen that data changed."""
        self.call_from_thread(self._changed, what)

    def _changed(self, what: str) -> None:
        if what == "rows" and self.first_rows_at is None and self.session.n:
            self.first_rows_at = time.perf_counter()
        self.screen.post_message(DataChanged(what))

    # --- background passes ---------------------------------------------------------------------------

    @work(thread=True, group="tokenizer", exit_on_error=False)
    def load_tokenizer(self) -> None:
        from workbench.tui.session import Job

        s = self.session
        try:
            if s.options.model:
                job = s.jobs.setdefault("model", Job(f"loading {s.options.model}"))

                def progress(info: dict[str, Any]) -> None:  # tiny-pretrained:<family> trains once, minutes
                    job.label = f"building {s.options.model}"
                    job.done, job.total = int(info.get("step", 0)), info.get("steps")

                try:
                    s.load_tokenizer(on_progress=progress)
                finally:
                    job.finished = True
                self.changed("tokenizer")
        except Exception as e:  # noqa: BLE001 - any loader failure is shown, and the app goes on without tokens
            s.errors.append("tokenizer")
            why = e.message if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
            s.skipped["tokens"] = s.skipped["checks"] = f"the tokenizer could not load ({why})"
            self.call_from_thread(self.show_error, e, "the tokenizer could not load")
        finally:
            self.tokenizer_ready.set()

    @work(thread=True, group="analyse", exit_on_error=False)
    def analyse(self) -> None:
        """Index, then read every row, then duplicates, tokens and checks, each filling columns as it goes."""
        s = self.session
        worker = get_current_worker()
        stop = lambda: worker.is_cancelled
        last = [0.0]

        def on_rows(n: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.3 or self.first_rows_at is None:
                last[0] = now
                self.changed("rows")

        try:
            s.index(on_rows, stop=stop)
        except WorkbenchError as e:
            s.open_error = e
            self.changed("error")
            return
        self.changed("rows")
        s.scan(stop=stop)
        self.changed("scan")
        if stop():
            return
        # every pass runs at every size; one that cannot run says why on screen (session.skipped)
        self._guard(lambda: _abandonable(s.run_dedup, stop), "duplicates")
        self.changed("dedup")
        if s.options.model is None:
            s.skipped["tokens"] = s.skipped["checks"] = "no --model given"
            self.changed("skipped")
            return
        while not self.tokenizer_ready.wait(0.2):
            if stop():
                return
        if s.tokenizer is not None and not stop():
            self._guard(lambda: s.tokenise(stop=stop), "tokens")
            self.changed("tokens")
            if not stop() and self._guard(lambda: _abandonable(s.run_checks, stop), "checks"):
                self.changed("checks")

    def _guard(self, fn: Any, what: str) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a failing optional pass is a message, not a dead app
            s = self.session
            job = s.jobs.get({"duplicates": "dedup", "tokens": "tokenise"}.get(what, what))
            if job is not None:
                job.finished = True
            s.errors.append(what)
            s.skipped[what] = f"failed: {e.message if isinstance(e, WorkbenchError) else type(e).__name__ + ': ' + str(e)}"
            self.call_from_thread(self.show_error, e, f"{what} failed")
            return None

    @work(thread=True, group="dedup", exclusive=True, exit_on_error=False)
    def find_duplicates(self) -> None:
        """Run dedup again (the analysis runs it once by itself)."""
        s = self.session
        if not s.scanned or ("dedup" in s.jobs and not s.jobs["dedup"].finished):
            self.call_from_thread(self.notify, "duplicates are being found already; the screen fills when they are done")
            return
        worker = get_current_worker()
        s.skipped.pop("duplicates", None)
        self._guard(lambda: _abandonable(s.run_dedup, lambda: worker.is_cancelled), "duplicates")
        self.changed("dedup")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error, f"{event.worker.group} failed")

    # --- navigation -----------------------------------------------------------------------------------

    def on_open_example(self, message: OpenExample) -> None:
        from workbench.tui.screens.example import ExampleScreen

        self.push_screen(ExampleScreen(message.row, message.order))

    async def action_quit(self) -> None:
        """Quit, asking first when decisions were made since the last export."""
        from workbench.tui.screens.confirm import QuitScreen

        if self.session.unexported and self.session.decisions and not isinstance(self.screen, QuitScreen):
            self.push_screen(QuitScreen())
            return
        self.exit()

    def action_goto(self) -> None:
        from workbench.tui.screens.goto import GotoScreen

        if not isinstance(self.screen, GotoScreen):
            self.push_screen(GotoScreen())

    def go_to(self, row: int) -> None:
        """Show a row: on the example screen when one is open, else under the dataset table's cursor."""
        from workbench.tui.screens.dataset import DatasetScreen
        from workbench.tui.screens.example import ExampleScreen

        if isinstance(self.screen, ExampleScreen):
            self.screen.show(row)
            return
        if not isinstance(self.screen, DatasetScreen):
            self.switch_mode("dataset")

        def move() -> None:
            if isinstance(self.screen, DatasetScreen):
                self.screen.go_to(row)

        self.call_later(move)

    def action_help(self) -> None:
        from workbench.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_export(self) -> None:
        from workbench.tui.screens.export import ExportScreen

        self.push_screen(ExportScreen())

    def action_filter(self, text: str) -> None:
        from workbench.tui.screens.dataset import DatasetScreen

        self.switch_mode("dataset")

        def apply() -> None:
            screen = self.screen
            if isinstance(screen, DatasetScreen):
                screen.set_filter(text)

        self.call_later(apply)

    def action_undo(self) -> None:
        row = self.session.undo()
        self.notify("nothing to undo" if row is None else f"undid the decision on row {row}")
        self.screen.post_message(DataChanged("decisions"))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Dataset", "All examples in a table (1)", lambda: self.switch_mode("dataset"))
        yield SystemCommand("Findings", "Check results grouped by code (2)", lambda: self.switch_mode("findings"))
        yield SystemCommand("Duplicates", "Duplicate clusters, keep/drop decisions (3)", lambda: self.switch_mode("duplicates"))
        yield SystemCommand("Stats", "Length histograms, roles, turns (4)", lambda: self.switch_mode("stats"))
        yield SystemCommand("Export curated set", "Write kept rows and the removed side file (e)", self.action_export)
        yield SystemCommand("Find duplicates", "Run exact + near-duplicate detection now", self.find_duplicates)
        yield SystemCommand("Undo decision", "Undo the last keep/drop decision (u)", self.action_undo)
        yield SystemCommand("Go to row", "A row number, file:line or :line, or an id (: or g)", self.action_goto)
        yield SystemCommand("Keys", "Show every key binding (?)", self.action_help)
        for label, text in (
            ("over max length", "is:long"),
            ("EOS not trained", "is:no-eos"),
            ("zero trained tokens", "is:zero"),
            ("in a duplicate cluster", "is:dup"),
            ("rejected rows", "is:reject"),
            ("with any finding", "is:flagged"),
            ("clear", ""),
        ):
            yield SystemCommand(f"Filter: {label}", f"Dataset rows {label}" if text else "Show every row",
                                lambda text=text: self.action_filter(text))  # fmt: skip


def _abandonable(fn: Any, stop: Any) -> Any:
    """Run ``fn`` (a pass that cannot stop half-way: numba, checks) in a daemon thread; give up waiting on ``stop``.

    Quitting then does not wait for it: asyncio joins its executor's threads at exit, not daemon threads.
    """
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            out["error"] = e

    t = threading.Thread(target=target, daemon=True, name="workbench-pass")
    t.start()
    while t.is_alive():
        t.join(0.2)
        if stop():
            return None
    if "error" in out:
        raise out["error"]
    return out.get("value")


def run(options: Options) -> None:
    WorkbenchApp(options).run()
