"""The app's state without the UI: rows, per-row columns filled by background passes, findings, decisions.

Worker threads write into numpy columns (one element at a time, under the GIL) while the UI reads
them; -1 means "not computed yet". Nothing here imports textual, so it is tested directly. The
passes themselves live in `passes.py`, the decision sidecar in `decisions.py`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.records import ROLES, Conversation, Reject
from workbench.tui import decisions as dlog
from workbench.tui.clusters import Dupes
from workbench.tui.rows import Rows, open_rows

from workbench.tui.columns import (  # noqa: F401 - re-exported: the screens and query read them from here
    ERROR,
    FLAGGED,
    ID_BYTES,
    NO_EOS,
    NUMERIC,
    OVER,
    REJECT,
    RENDER_ERROR,
    ROLE_BIT,
    SEVERITY_FLAG,
    WARNING,
    ZERO,
    Group,
    Job,
)

StopFn = Callable[[], bool]

@dataclass
class Options:
    """What the `tui` command was given."""

    paths: list[str]
    model: str | None = None
    template: str | None = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    max_length: int | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)


class Session:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rows: Rows | None = None
        self.open_error: Any = None  # the WorkbenchError that stopped the input from opening
        self.tokenizer: Any = None
        self.model_path: str | None = None  # --model resolved to a folder (tiny:<family> built)
        self.cols: dict[str, np.ndarray] = {}
        self.roles = np.zeros(0, dtype=np.uint8)
        self.flags = np.zeros(0, dtype=np.uint8)
        self.cluster = np.zeros(0, dtype=np.int32)
        self.ids = np.zeros(0, dtype=f"S{ID_BYTES}")  # content ids, filled by the scan
        self.items: list[Conversation | Reject | None] = []  # every row once scanned: dedup and checks reuse them
        self.codes: dict[int, list[str]] = {}
        self.groups: dict[str, Group] = {}
        self.jobs: dict[str, Job] = {}
        self.skipped: dict[str, str] = {}  # pass → why it did not run, said on screen
        self.dupes: Dupes | None = None
        self.role_turns: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.decisions: dict[int, str] = {}  # table row → "keep" | "drop"
        self.undo_stack: list[tuple[int, str | None]] = []
        self.unexported = 0  # decisions changed since the last export (or saved so in the sidecar)
        self.log = dlog.DecisionLog(None, [])
        self.saved: dlog.Saved | None = None  # sidecar records not yet placed on rows
        self.unmatched: list[tuple[str, str]] = []  # sidecar records that match no row
        self.scanned = False
        self.tokenised = False
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._by_source: dict[str, int] | None = None
        self.search_cache: tuple[str, np.ndarray] | None = None  # the last full text search: (text, row mask)

    # --- opening ----------------------------------------------------------------------------

    def open(self) -> Rows:
        """Check the inputs and make the row source (fast: nothing is read yet). Raises WorkbenchError."""
        o = self.options
        self.rows = open_rows(o.paths, format=o.format, mapping=o.mapping)
        self.log = dlog.DecisionLog(dlog.sidecar_path(o.paths[0]), list(o.paths))
        return self.rows

    def load_tokenizer(self, on_progress: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """--model as the CLI's `run`/`train` read it (tiny:<family> and tiny-pretrained:<family> built), then its tokenizer."""
        from workbench.template import load_tokenizer
        from workbench.train import resolve_model_name

        o = self.options
        if not o.model:
            return None
        self.model_path = resolve_model_name(o.model, on_progress=on_progress)
        self.tokenizer = load_tokenizer(self.model_path, template=o.template, template_kwargs=o.template_kwargs)
        return self.tokenizer

    def index(self, on_rows: Callable[[int], None] | None = None, stop: StopFn | None = None) -> None:
        """Find all rows (offsets for JSONL, a streamed read otherwise), reporting progress as it goes."""
        rows = self.rows
        assert rows is not None
        job = self.jobs.setdefault("index", Job("indexing"))
        if hasattr(rows, "build"):

            def chunk(n: int, done: int, total: int) -> None:
                job.done, job.total = done, total
                self._allocate(n)
                if on_rows:
                    on_rows(n)

            rows.build(chunk, stop=stop)  # type: ignore[union-attr]
        else:
            job.label = "reading"

            def progress(done: int, total: int | None = None) -> None:
                job.done, job.total = done, total
                self._allocate(len(rows))
                if on_rows:
                    on_rows(len(rows))

            rows.load(progress, stop=stop)  # type: ignore[attr-defined]
        job.finished = rows.complete
        self._allocate(len(rows))
        self.apply_saved()

    def _allocate(self, n: int) -> None:
        """Columns for ``n`` rows; called as the index grows, before any pass writes into them."""
        if n == len(self.flags):
            return
        self.cols = {name: np.full(n, -1, dtype=np.int64) for name in NUMERIC}
        self.roles = np.zeros(n, dtype=np.uint8)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.cluster = np.zeros(n, dtype=np.int32)
        self.ids = np.zeros(n, dtype=f"S{ID_BYTES}")

    @property
    def n(self) -> int:
        return len(self.rows) if self.rows is not None else 0

    def value(self, name: str, i: int) -> int | None:
        col = self.cols.get(name)
        if col is None or i >= len(col) or col[i] < 0:
            return None
        return int(col[i])

    def item(self, row: int) -> Conversation | Reject:
        it = self.items[row] if row < len(self.items) else None
        if it is None:
            assert self.rows is not None
            return self.rows.item(row)
        return it

    # --- finding rows ---------------------------------------------------------------------------

    def find(self, ref: str) -> list[int]:
        """Table rows a reference names: ``file:line``, ``:line``, ``file[row]``, or a content id (prefix)."""
        ref = ref.strip()
        m = re.fullmatch(r"(?P<file>.*):(?P<line>\d+)", ref)
        if m:
            return self._at_line(m.group("file"), int(m.group("line")))
        m = re.fullmatch(r"(?P<file>.+)\[(?P<row>\d+)\]", ref)
        if m:
            return self._at_source(ref)
        if re.fullmatch(r"[0-9a-fA-F]{4,16}", ref):
            return self.rows_with_id(ref.lower())
        return []

    def rows_with_id(self, prefix: str) -> list[int]:
        """Rows whose content id starts with ``prefix`` (the whole id, or a unique-looking start of it)."""
        key = prefix.encode()
        ids = self.ids
        if len(key) == ID_BYTES:
            return np.flatnonzero(ids == key).tolist()  # type: ignore[no-any-return]
        return np.flatnonzero(np.char.startswith(ids, key)).tolist()  # type: ignore[no-any-return]

    def _at_line(self, file: str, line: int) -> list[int]:
        rows = self.rows
        if rows is None:
            return []
        lines = getattr(rows, "lines", None)
        if lines is not None:  # one JSONL file: its line numbers are sorted
            name = Path(rows.name).name
            if file and Path(file).name != name:
                return []
            i = int(np.searchsorted(lines, line))
            return [i] if i < len(lines) and int(lines[i]) == line else []
        return self._at_source(f"{file}:{line}", loose=not file)

    def _at_source(self, ref: str, *, loose: bool = False) -> list[int]:
        rows = self.rows
        if rows is None:
            return []
        if self._by_source is None or len(self._by_source) < len(rows):
            self._by_source = {str(rows.source(i)): i for i in range(len(rows))}
        if ref in self._by_source:
            return [self._by_source[ref]]
        file, _, tail = ref.rpartition(":") if ":" in ref else (ref, "", "")
        name = Path(file).name
        hits = [r for s, r in self._by_source.items() if (loose or Path(s.rpartition(":")[0]).name == name) and s.endswith(":" + tail)]
        return sorted(hits)[:1] if tail else []

    # --- findings -------------------------------------------------------------------------------

    def group(self, code: str, severity: str, message: str, hint: str | None) -> Group:
        g = self.groups.get(code)
        if g is None:
            with self._lock:
                g = self.groups.setdefault(code, Group(code, severity, message, hint))
        return g

    def add(self, row: int, code: str, severity: str, message: str, hint: str | None) -> None:
        g = self.group(code, severity, message, hint)
        have = self.codes.setdefault(row, [])
        if code not in have:
            have.append(code)
            assert isinstance(g.rows, list)
            g.rows.append(row)
            if len(g.rows) > 1 and g.rows[-2] > row:
                g.rows.sort()
        self.flags[row] |= FLAGGED | SEVERITY_FLAG.get(severity, 0)

    def codes_of(self, row: int) -> list[str]:
        """The row's finding codes: its own, then the dedup reason it was removed for."""
        out = list(self.codes.get(row, ()))
        d = self.dupes
        if d is not None:
            why = d.reason_of(row)
            if why is not None:
                out.append(f"duplicate:{why}")
        return out

    def groups_sorted(self) -> list[Group]:
        """Template-wide facts first, then by severity (errors first), then by how many rows they cover."""
        rank = {"error": 0, "warning": 1, "info": 2}
        return sorted(self.groups.values(), key=lambda g: (not g.wide, rank.get(g.severity, 3), -len(g.rows), g.code))

    def wide_groups(self) -> list[Group]:
        return [g for g in self.groups_sorted() if g.wide]

    def severity_of(self, code: str) -> str:
        g = self.groups.get(code)
        return g.severity if g else "info"

    # --- passes (bodies in passes.py) -------------------------------------------------------------

    def scan(self, stop: StopFn | None = None) -> None:
        from workbench.tui.passes import scan

        scan(self, stop)

    def tokenise(self, stop: StopFn | None = None) -> None:
        from workbench.tui.passes import tokenise

        tokenise(self, stop)

    def run_checks(self, stop: StopFn | None = None) -> bool:
        from workbench.tui.passes import run_checks

        return run_checks(self, stop)

    def run_dedup(self, on_progress: Callable[[int, int | None], None] | None = None) -> Any:
        from workbench.tui.passes import run_dedup

        return run_dedup(self, on_progress)

    @property
    def dedup_result(self) -> Any:
        return self.dupes.result if self.dupes is not None else None

    # --- decisions --------------------------------------------------------------------------------

    def decision(self, row: int) -> str | None:
        return self.decisions.get(row)

    def is_kept(self, row: int) -> bool:
        """After decisions: kept unless dropped by hand, rejected, or removed by dedup and not kept by hand."""
        d = self.decisions.get(row)
        if d is not None:
            return d == "keep"
        if row < len(self.flags) and self.flags[row] & REJECT:
            return False
        return not (self.dupes is not None and self.dupes.removed(row))

    def decide(self, row: int, what: str | None) -> None:
        """Set (or with None clear) the keep/drop decision for a row, saved to the sidecar at once; undo restores."""
        if what not in ("keep", "drop", None):
            raise ValueError(what)
        self.undo_stack.append((row, self.decisions.get(row)))
        self._set(row, what)

    def undo(self) -> int | None:
        """Undo the last decision; the row it touched, or None when there is nothing to undo."""
        if not self.undo_stack:
            return None
        row, before = self.undo_stack.pop()
        self._set(row, before)
        return row

    def _set(self, row: int, what: str | None) -> None:
        if what is None:
            self.decisions.pop(row, None)
        else:
            self.decisions[row] = what
        self.unexported += 1
        item = self.item(row)
        cid = item.id if isinstance(item, Conversation) else ""
        assert self.rows is not None
        self.log.append({"source": str(self.rows.source(row)), "id": cid, "decision": what})

    def apply_saved(self) -> None:
        """Put the sidecar's decisions onto rows: by file:line at once, by id when every row is scanned."""
        if self.saved is None:
            self.saved = dlog.read(self.log.path) if self.log.path is not None else dlog.Saved()
            self.unexported = len(self.saved.unexported)
            if not self.saved.decisions:
                return
        if not self.saved.decisions or self.rows is None:
            return

        def line_row(source: str) -> int | None:
            hit = self.find(source)
            return hit[0] if hit else None

        def id_of(row: int) -> str | None:
            it = self.item(row)
            return it.id if isinstance(it, Conversation) else ""

        placed, left = dlog.match(self.saved, line_row, id_of, self.rows_with_id if self.scanned else None)
        for row, what in placed.items():
            self.decisions.setdefault(row, what)
        self.saved.decisions = {k: self.saved.decisions[k] for k in left}
        if self.scanned:
            self.unmatched = left

    def _conversations(self) -> list[tuple[int, Conversation]]:
        """(table row, conversation) of every row; parsed afresh while the scan has not finished (never racing it)."""
        if self.scanned:
            return [(r, it) for r, it in enumerate(self.items) if isinstance(it, Conversation)]
        assert self.rows is not None
        pairs = ((r, self.rows.parse(r)) for r in range(len(self.rows)))
        return [(r, it) for r, it in pairs if isinstance(it, Conversation)]

    def overrides(self, pairs: list[tuple[int, Conversation]] | None = None) -> dict[int, str]:
        """Decisions keyed by dedup input position (conversations only), as dedup.write_outputs wants."""
        if self.dupes is not None:
            pos = {int(r): k for k, r in enumerate(self.dupes.table_rows)}
        else:
            pos = {r: k for k, (r, _) in enumerate(pairs if pairs is not None else self._conversations())}
        return {pos[r]: d for r, d in sorted(self.decisions.items()) if r in pos}

    def save(self, kept_path: str | os.PathLike[str], removed_path: str | os.PathLike[str],
             fmt: str | None = None) -> dict[str, int]:  # fmt: skip
        """Write the curated set and the removed side file exactly as `workbench dedup` does.

        Without a dedup run every conversation starts kept; decisions apply either way.
        """
        from workbench.dedup import REASONS, DedupConfig, DedupResult, write_outputs

        result = self.dedup_result
        pairs = None
        if result is None:
            pairs = self._conversations()
            convs = [c for _, c in pairs]
            n = len(convs)
            counts = {"read": n, "kept": n, "removed": 0, **dict.fromkeys(REASONS, 0)}
            result = DedupResult(convs, [], [], [], counts, list(range(n)), DedupConfig())
        final = write_outputs(result, kept_path, removed_path, overrides=self.overrides(pairs), fmt=fmt,
                              protect=self.options.paths)  # fmt: skip
        self.unexported = 0
        self.log.append({"exported": os.fspath(kept_path), "removed": os.fspath(removed_path)})
        return dict(final.counts)


def default_outputs(paths: Sequence[str], suffix: str = ".jsonl") -> tuple[str, str]:
    """``data/train.jsonl`` → ``data/train.dedup.jsonl`` (as `workbench dedup` names it) and ``data/train.removed.jsonl``."""
    first = Path(paths[0].rstrip("/"))
    stem = first.name.split(".", 1)[0] if first.suffix else first.name
    return str(first.with_name(f"{stem}.dedup{suffix}")), str(first.with_name(f"{stem}.removed.jsonl"))


def options(paths: Sequence[str], **kwargs: Any) -> Options:
    mapping: Mapping[str, str] = kwargs.pop("mapping", None) or {}
    return Options([os.fspath(p) for p in paths], mapping=dict(mapping), **kwargs)
