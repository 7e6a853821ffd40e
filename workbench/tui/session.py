"""The app's state without the UI: rows, per-row columns filled by background passes, findings, decisions.

Worker threads write into numpy columns (one element at a time, under the GIL) while the UI reads
them; -1 means "not computed yet". Nothing here imports textual, so it is tested directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.records import ROLES, Conversation, Reject
from workbench.tui.rows import Rows, open_rows

StopFn = Callable[[], bool]

ROLE_BIT = {r: 1 << i for i, r in enumerate(ROLES)}
# row flags: cheap vectorised filters
REJECT, OVER, NO_EOS, ZERO, RENDER_ERROR, FLAGGED = 1, 2, 4, 8, 16, 32
NUMERIC = ("turns", "chars", "tokens", "trained")

# codes the app derives itself; checks/lint/dedup bring their own messages and hints
OWN_CODES: dict[str, tuple[str, str, str]] = {
    "render_error": ("error", "the chat template failed on this example", "see the error on the example screen"),
    "mask_problem": ("error", "mask verification failed: trained tokens are not exactly the answers",
                     "open the example's token view; check the template's generation tags"),
    "zero_trained": ("error", "no token is trained (no assistant turn, or all of it cut by --max-length)",
                     "drop the row or fix the role mapping; it costs compute and teaches nothing"),
    "eos_not_trained": ("error", "the end-of-turn token is not trained",
                        "the model will not learn to stop; usually truncation at --max-length"),
    "over_max_length": ("warning", "longer than --max-length (training truncates it)",
                        "raise --max-length, or drop or split these rows"),
}  # fmt: skip


@dataclass
class Group:
    """Rows that share one finding code, with what to say about them."""

    code: str
    severity: str
    message: str
    hint: str | None
    rows: list[int] = field(default_factory=list)
    count: int | None = None  # when a check reports more rows than it names


@dataclass
class Job:
    label: str
    done: int = 0
    total: int | None = None
    finished: bool = False


@dataclass
class Options:
    """What the `tui` command was given."""

    paths: list[str]
    model: str | None = None
    template: str | None = None
    max_length: int | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)


class Session:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rows: Rows | None = None
        self.tokenizer: Any = None
        self.cols: dict[str, np.ndarray] = {}
        self.roles = np.zeros(0, dtype=np.uint8)
        self.flags = np.zeros(0, dtype=np.uint8)
        self.cluster = np.zeros(0, dtype=np.int32)
        self.codes: dict[int, list[str]] = {}
        self.groups: dict[str, Group] = {}
        self.jobs: dict[str, Job] = {}
        self.dedup_result: Any = None
        self.dedup_kept: dict[int, int] = {}  # table row of each cluster's kept row → cluster id
        self.dedup_removed: dict[int, Any] = {}  # table row → dedup.Removed
        self.dedup_rows: list[int] = []  # dedup's input position → table row
        self.role_turns: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.dedup_pos: dict[int, int] | None = None  # table row → dedup's input position
        self.decisions: dict[int, str] = {}  # table row → "keep" | "drop"
        self.undo_stack: list[tuple[int, str | None]] = []
        self.scanned = False
        self.tokenised = False
        self.errors: list[str] = []
        self._lock = threading.Lock()

    # --- opening ----------------------------------------------------------------------------

    def open(self) -> Rows:
        """Check the inputs and make the row source (fast: nothing is read yet). Raises WorkbenchError."""
        o = self.options
        self.rows = open_rows(o.paths, format=o.format, mapping=o.mapping)
        return self.rows

    def load_tokenizer(self) -> Any:
        from workbench.template import load_tokenizer

        o = self.options
        self.tokenizer = load_tokenizer(o.model, template=o.template) if o.model else None
        return self.tokenizer

    def index(self, on_rows: Callable[[int], None] | None = None, stop: StopFn | None = None) -> None:
        """Find all rows (offsets for JSONL, a full read otherwise), reporting progress as it goes."""
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

            def progress(done: int, total: int | None = None) -> None:
                job.done, job.total = done, total
                self._allocate(len(rows))
                if on_rows:
                    on_rows(len(rows))

            rows.load(progress, stop=stop)  # type: ignore[attr-defined]
        job.finished = rows.complete
        self._allocate(len(rows))

    def _allocate(self, n: int) -> None:
        """Columns for ``n`` rows; called as the index grows, before any pass writes into them."""
        if n == len(self.flags):
            return
        self.cols = {name: np.full(n, -1, dtype=np.int64) for name in NUMERIC}
        self.roles = np.zeros(n, dtype=np.uint8)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.cluster = np.zeros(n, dtype=np.int32)

    @property
    def n(self) -> int:
        return len(self.rows) if self.rows is not None else 0

    def value(self, name: str, i: int) -> int | None:
        col = self.cols.get(name)
        if col is None or i >= len(col) or col[i] < 0:
            return None
        return int(col[i])

    # --- background passes --------------------------------------------------------------------

    def scan(self, stop: StopFn | None = None) -> None:
        """Pass 1 over every row: turns, characters, roles, rejects and content lint codes."""
        from workbench.data import RULES, lint

        rows = self.rows
        assert rows is not None
        n = len(self.cols["turns"])
        job = self.jobs.setdefault("scan", Job("reading", 0, n))
        turns, chars, roles, flags = self.cols["turns"], self.cols["chars"], self.roles, self.flags
        role_turns = self.role_turns
        for i in range(n):
            if stop is not None and not i % 1024 and stop():
                return
            it = rows.parse(i)
            if isinstance(it, Reject):
                flags[i] |= REJECT
                self._add(i, f"rejected:{it.reason}", "error", f"rows ingest rejects ({it.reason.replace('_', ' ')})",
                          "`workbench ingest` writes these, with file:line and reason, to its rejects side file")  # fmt: skip
                continue
            bits = 0
            size = 0
            for m in it.messages:
                bits |= ROLE_BIT.get(m.role, 0)
                size += len(m.content)
                role_turns[m.role] = role_turns.get(m.role, 0) + 1
            roles[i], turns[i], chars[i] = bits, len(it.messages), size
            for f in lint([it]):
                rule = RULES.get(f.code)
                self._add(i, f.code, f.severity, rule.message if rule else f.message, f.hint)
            job.done = i + 1
        job.finished = True
        self.scanned = True

    def tokenise(self, stop: StopFn | None = None) -> None:
        """Pass 2: render and mask every row with the tokenizer; tokens, trained tokens, EOS and length flags."""
        from workbench.template import end_of_turn_ids, render_bounded, trained_runs

        tok, rows = self.tokenizer, self.rows
        assert tok is not None and rows is not None
        n = len(self.cols["tokens"])
        job = self.jobs.setdefault("tokenise", Job("tokenising", 0, n))
        eot = set(end_of_turn_ids(tok))
        max_len = self.options.max_length
        tokens, trained, flags = self.cols["tokens"], self.cols["trained"], self.flags
        for i in range(n):
            if stop is not None and not i % 64 and stop():
                return
            it = rows.item(i) if i < 256 else rows.parse(i)
            if isinstance(it, Reject):
                continue
            res = render_bounded(tok, it, max_length=max_len)  # a huge row is reported, not tokenised
            r = res.rendered
            if r is None:
                flags[i] |= RENDER_ERROR
                self._add(i, "render_error", *OWN_CODES["render_error"])
            else:
                tokens[i] = max(res.length, len(r.input_ids))
                t = r.trained_count
                trained[i] = t
                if res.problems:
                    self._add(i, "mask_problem", *OWN_CODES["mask_problem"])
                if t == 0:
                    flags[i] |= ZERO
                    self._add(i, "zero_trained", *OWN_CODES["zero_trained"])
                elif eot and not any(r.input_ids[b - 1] in eot for _, b in trained_runs(r.labels)):
                    flags[i] |= NO_EOS
                    self._add(i, "eos_not_trained", *OWN_CODES["eos_not_trained"])
                if max_len is not None and tokens[i] > max_len:
                    flags[i] |= OVER
                    self._add(i, "over_max_length", *OWN_CODES["over_max_length"])
            job.done = i + 1
        job.finished = True
        self.tokenised = True

    def conversations(self) -> Iterator[tuple[int, Conversation]]:
        """(table row, conversation) for every row that is not a reject, in input order."""
        rows = self.rows
        assert rows is not None
        for i in range(len(rows)):
            it = rows.parse(i)
            if isinstance(it, Conversation):
                yield i, it

    def run_checks(self, stop: StopFn | None = None) -> bool:
        """The checks module's findings (template, EOS, BOS, pad, stop tokens, truncation); False when absent."""
        try:
            from workbench.checks import run_checks
        except ImportError:
            return False
        job = self.jobs.setdefault("checks", Job("checks", 0, None))
        pairs = list(self.conversations())
        convs = [c for _, c in pairs]
        by_id: dict[str, list[int]] = {}
        for row, c in pairs:
            by_id.setdefault(c.id, []).append(row)
        model_dir = self.options.model if self.options.model and Path(self.options.model).is_dir() else None

        def progress(done: int, total: int | None = None) -> None:
            job.done, job.total = done, total

        report = run_checks(self.tokenizer, convs, model_dir=model_dir, max_length=self.options.max_length,
                            on_progress=progress)  # fmt: skip
        for f in report.findings:
            rows = sorted({r for eid in f.example_ids for r in by_id.get(eid, [])})
            for eid, codes in report.by_example.items():
                if f.code in codes:
                    rows.extend(r for r in by_id.get(eid, []) if r not in rows)
            g = self._group(f.code, f.severity, f.message, f.hint)
            count = f.data.get("count") if isinstance(f.data, dict) else None
            if isinstance(count, int):
                g.count = count
            for r in sorted(set(rows)):
                self._add(r, f.code, f.severity, f.message, f.hint)
        job.finished = True
        return True

    def run_dedup(self, on_progress: Callable[[int, int | None], None] | None = None) -> Any:
        """Exact and near duplicates over the conversations (dedup's defaults); clusters onto table rows."""
        from workbench.dedup import dedup

        pairs = list(self.conversations())
        table_rows = [r for r, _ in pairs]
        job = self.jobs.setdefault("dedup", Job("duplicates", 0, None))

        def progress(done: int, total: int | None = None) -> None:
            job.done, job.total = done, total
            if on_progress:
                on_progress(done, total)

        result = dedup([c for _, c in pairs], on_progress=progress)
        self.apply_dedup(result, table_rows)
        job.finished = True
        return result

    def apply_dedup(self, result: Any, table_rows: list[int]) -> None:
        """Put a dedup result onto the table rows (replacing an earlier run's clusters and codes)."""
        if self.dedup_result is not None:
            old = {c for c in self.groups if c.startswith("duplicate:")}
            for row in self.dedup_removed:
                self.codes[row] = [c for c in self.codes.get(row, []) if c not in old]
            for c in old:
                del self.groups[c]
            self.cluster[:] = 0
            self.dedup_kept.clear()
            self.dedup_removed.clear()
        self.dedup_rows = table_rows
        self.dedup_pos = {r: k for k, r in enumerate(table_rows)}
        for c in result.clusters:
            self.cluster[table_rows[c.kept_row]] = c.id
            self.dedup_kept[table_rows[c.kept_row]] = c.id
        for rm in result.removed:
            row = table_rows[rm.row]
            self.dedup_removed[row] = rm
            if rm.cluster:
                self.cluster[row] = rm.cluster
            self._add(row, f"duplicate:{rm.reason}", "warning", f"removed by dedup ({rm.reason})",
                      "the Duplicates screen (3) shows each cluster; keep or drop rows there")  # fmt: skip
        for f in result.findings:
            g = self._group(f.code, f.severity, f.message, f.hint)
            for k in f.data.get("rows", []) if isinstance(f.data, dict) else []:
                if 0 <= k < len(table_rows):
                    g.rows.append(table_rows[k])
        self.dedup_result = result

    # --- findings -------------------------------------------------------------------------------

    def _group(self, code: str, severity: str, message: str, hint: str | None) -> Group:
        g = self.groups.get(code)
        if g is None:
            with self._lock:
                g = self.groups.setdefault(code, Group(code, severity, message, hint))
        return g

    def _add(self, row: int, code: str, severity: str, message: str, hint: str | None) -> None:
        g = self._group(code, severity, message, hint)
        have = self.codes.setdefault(row, [])
        if code not in have:
            have.append(code)
            g.rows.append(row)
            if len(g.rows) > 1 and g.rows[-2] > row:
                g.rows.sort()
        self.flags[row] |= FLAGGED

    def groups_sorted(self) -> list[Group]:
        """Findings by severity (errors first), then by how many rows they cover."""
        rank = {"error": 0, "warning": 1, "info": 2}
        return sorted(self.groups.values(), key=lambda g: (rank.get(g.severity, 3), -len(g.rows), g.code))

    def severity_of(self, code: str) -> str:
        g = self.groups.get(code)
        return g.severity if g else "info"

    # --- decisions --------------------------------------------------------------------------------

    def decision(self, row: int) -> str | None:
        return self.decisions.get(row)

    def is_kept(self, row: int) -> bool:
        """After decisions: kept unless dropped by hand or removed by dedup and not kept by hand."""
        d = self.decisions.get(row)
        if d is not None:
            return d == "keep"
        if row < len(self.flags) and self.flags[row] & REJECT:
            return False
        return not any(c.startswith("duplicate:") for c in self.codes.get(row, ()))

    def decide(self, row: int, what: str | None) -> None:
        """Set (or with None clear) the keep/drop decision for a row; undo restores the one before."""
        if what not in ("keep", "drop", None):
            raise ValueError(what)
        self.undo_stack.append((row, self.decisions.get(row)))
        if what is None:
            self.decisions.pop(row, None)
        else:
            self.decisions[row] = what

    def undo(self) -> int | None:
        """Undo the last decision; the row it touched, or None when there is nothing to undo."""
        if not self.undo_stack:
            return None
        row, before = self.undo_stack.pop()
        if before is None:
            self.decisions.pop(row, None)
        else:
            self.decisions[row] = before
        return row

    def overrides(self) -> dict[int, str]:
        """Decisions keyed by dedup input position (conversations only), as dedup.write_outputs wants."""
        pos = self.dedup_pos
        if pos is None:
            pos = {r: k for k, (r, _) in enumerate(self.conversations())}
        return {pos[r]: d for r, d in sorted(self.decisions.items()) if r in pos}

    def save(self, kept_path: str | os.PathLike[str], removed_path: str | os.PathLike[str],
             fmt: str | None = None) -> dict[str, int]:  # fmt: skip
        """Write the curated set and the removed side file exactly as `workbench dedup` does.

        Without a dedup run every conversation starts kept; decisions apply either way.
        """
        from workbench.dedup import REASONS, DedupConfig, DedupResult, write_outputs

        result = self.dedup_result
        if result is None:
            pairs = list(self.conversations())
            self.dedup_pos = {r: k for k, (r, _) in enumerate(pairs)}
            convs = [c for _, c in pairs]
            n = len(convs)
            counts = {"read": n, "kept": n, "removed": 0, **dict.fromkeys(REASONS, 0)}
            result = DedupResult(convs, [], [], [], counts, list(range(n)), DedupConfig())
        final = write_outputs(result, kept_path, removed_path, overrides=self.overrides(), fmt=fmt,
                              protect=self.options.paths)  # fmt: skip
        return dict(final.counts)


def default_outputs(paths: Sequence[str], suffix: str = ".jsonl") -> tuple[str, str]:
    """``data/train.jsonl`` → ``data/train.dedup.jsonl`` (as `workbench dedup` names it) and ``data/train.removed.jsonl``."""
    first = Path(paths[0].rstrip("/"))
    stem = first.name.split(".", 1)[0] if first.suffix else first.name
    return str(first.with_name(f"{stem}.dedup{suffix}")), str(first.with_name(f"{stem}.removed.jsonl"))


def options(paths: Sequence[str], **kwargs: Any) -> Options:
    mapping: Mapping[str, str] = kwargs.pop("mapping", None) or {}
    return Options([os.fspath(p) for p in paths], mapping=dict(mapping), **kwargs)
