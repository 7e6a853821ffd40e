"""The background passes over a session's rows: read and lint, tokenise, checks, duplicates; each fills columns and findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.records import Conversation, Reject
from workbench.tui import clusters

if TYPE_CHECKING:
    from workbench.tui.session import Session, StopFn

# codes the app derives itself while tokenising; checks, lint and dedup bring their own messages and hints
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
DUP_HINT = "the Duplicates screen (3) shows each cluster; keep or drop rows there"


def scan(s: Session, stop: StopFn | None = None) -> None:
    """Every row once: turns, characters, roles, content ids, rejects and content lint codes."""
    from workbench.data import RULES, lint
    from workbench.tui.columns import REJECT, ROLE_BIT, Job

    rows = s.rows
    assert rows is not None
    n = len(s.cols["turns"])
    job = s.jobs.setdefault("scan", Job("reading", 0, n))
    if len(s.items) != n:
        s.items = list(rows.items) if hasattr(rows, "items") else [None] * n  # MemoryRows holds them already
    turns, chars, roles, flags, ids, items = s.cols["turns"], s.cols["chars"], s.roles, s.flags, s.ids, s.items
    role_turns = s.role_turns
    for i in range(job.done, n):
        if stop is not None and not i % 1024 and stop():
            return
        it = items[i]
        if it is None:
            it = items[i] = rows.parse(i)
        if isinstance(it, Reject):
            flags[i] |= REJECT
            s.add(i, f"rejected:{it.reason}", "error", f"rows ingest rejects ({it.reason.replace('_', ' ')})",
                  "`workbench ingest` writes these, with file:line and reason, to its rejects side file")  # fmt: skip
            job.done = i + 1
            continue
        ids[i] = it.id.encode()
        bits = 0
        size = 0
        for m in it.messages:
            bits |= ROLE_BIT.get(m.role, 0)
            size += len(m.content)
            role_turns[m.role] = role_turns.get(m.role, 0) + 1
        roles[i], turns[i], chars[i] = bits, len(it.messages), size
        for f in lint([it]):
            rule = RULES.get(f.code)
            s.add(i, f.code, f.severity, rule.message if rule else f.message, f.hint)
        job.done = i + 1
    job.finished = True
    s.scanned = True
    settle_heap()
    s.apply_saved()  # decisions whose file:line moved are found by id now


def settle_heap() -> None:
    """Move what a pass built (a million conversations) out of the collector's sight: a full collection
    walking them stalls the UI thread for a second or more, in the middle of a keystroke."""
    import gc

    gc.freeze()


def conversations(s: Session) -> tuple[list[int], list[Conversation]]:
    """(table rows, conversations) of every row that is not a reject, in input order."""
    rows = [i for i, it in enumerate(s.items) if isinstance(it, Conversation)]
    return rows, [s.items[i] for i in rows]  # type: ignore[misc]


def tokenise(s: Session, stop: StopFn | None = None) -> None:
    """Render and mask every row with the tokenizer (batched); tokens, trained tokens, EOS and length flags."""
    from workbench.template import end_of_turn_ids, render_many, trained_runs
    from workbench.tui.columns import NO_EOS, OVER, RENDER_ERROR, ZERO, Job

    tok = s.tokenizer
    assert tok is not None and s.scanned
    table_rows, convs = conversations(s)
    job = s.jobs.setdefault("tokenise", Job("tokenising", 0, len(convs)))
    eot = set(end_of_turn_ids(tok))
    max_len = s.options.max_length
    tokens, trained, flags = s.cols["tokens"], s.cols["trained"], s.flags

    def progress(done: int, total: int | None = None) -> None:
        job.done = done

    # one process: forking a process that runs the UI's threads is not safe
    for k, res in enumerate(render_many(tok, convs, max_length=max_len, workers=1, batch_size=64, progress=progress)):
        if stop is not None and not k % 64 and stop():
            return
        i = table_rows[res.index if res.index is not None else k]
        r = res.rendered
        if r is None:
            flags[i] |= RENDER_ERROR
            s.add(i, "render_error", *OWN_CODES["render_error"])
            continue
        tokens[i] = max(res.length, len(r.input_ids))
        t = r.trained_count
        trained[i] = t
        if res.problems:
            s.add(i, "mask_problem", *OWN_CODES["mask_problem"])
        if t == 0:
            flags[i] |= ZERO
            s.add(i, "zero_trained", *OWN_CODES["zero_trained"])
        elif eot and not any(r.input_ids[b - 1] in eot for _, b in trained_runs(r.labels)):
            flags[i] |= NO_EOS
            s.add(i, "eos_not_trained", *OWN_CODES["eos_not_trained"])
        if max_len is not None and tokens[i] > max_len:
            flags[i] |= OVER
            s.add(i, "over_max_length", *OWN_CODES["over_max_length"])
    job.done = len(convs)
    job.finished = True
    s.tokenised = True


def rows_of_ids(s: Session, ids: list[str]) -> np.ndarray:
    """Table rows whose content id is one of ``ids`` (every copy of an exact duplicate)."""
    if not ids:
        return np.empty(0, dtype=np.int64)
    want = np.asarray([i.encode() for i in ids], dtype=s.ids.dtype)
    return np.flatnonzero(np.isin(s.ids, want)).astype(np.int64)


def run_checks(s: Session, stop: StopFn | None = None) -> bool:
    """The checks module's findings (template, EOS, BOS, pad, stop tokens, truncation) onto rows."""
    from workbench.checks import TEMPLATE_WIDE, run_checks as check
    from workbench.tui.columns import Job

    job = s.jobs.setdefault("checks", Job("checks", 0, None))
    _, convs = conversations(s)
    job.total = len(convs)
    path = s.model_path
    model_dir = path if path and Path(path).is_dir() else None

    def progress(done: int, total: int | None = None) -> None:
        job.done = done

    report = check(s.tokenizer, convs, model_dir=model_dir, max_length=s.options.max_length,
                   on_progress=progress, workers=1)  # fmt: skip
    for f in report.findings:
        rows = rows_of_ids(s, list(f.example_ids))
        g = s.group(f.code, f.severity, f.message, f.hint)
        count = f.data.get("count") if isinstance(f.data, dict) else None
        if isinstance(count, int):
            g.count = count
        if f.code in TEMPLATE_WIDE:
            g.wide, g.rows = True, rows  # one line above the table, not a badge on each row
            continue
        for r in rows.tolist():
            s.add(r, f.code, f.severity, f.message, f.hint)
    job.finished = True
    return True


def run_dedup(s: Session, on_progress: Callable[[int, int | None], None] | None = None) -> Any:
    """Exact and near duplicates over the scanned conversations (dedup's defaults); clusters onto table rows."""
    from workbench.dedup import dedup
    from workbench.tui.columns import Job

    assert s.scanned
    table_rows, convs = conversations(s)
    job = s.jobs.setdefault("dedup", Job("duplicates", 0, None))
    job.finished = False

    def progress(done: int, total: int | None = None) -> None:
        job.done, job.total = done, total
        if on_progress:
            on_progress(done, total)

    result = dedup(convs, on_progress=progress)
    apply_dedup(s, result, table_rows)
    job.finished = True
    return result


def apply_dedup(s: Session, result: Any, table_rows: list[int]) -> None:
    """Put a dedup result onto the table rows, replacing an earlier run's clusters and findings."""
    old = [c for c in s.groups if c.startswith("duplicate:") or c in _dedup_codes(s.dupes)]
    for code in old:
        g = s.groups.pop(code)
        for r in np.asarray(g.rows, dtype=np.int64).tolist():
            if r in s.codes and code in s.codes[r]:
                s.codes[r].remove(code)
    d = clusters.build(result, table_rows, s.n, find=s.find)
    for why in d.reasons:
        g = s.group(f"duplicate:{why}", "warning", f"removed by dedup ({why})", DUP_HINT)
        g.rows = d.rows_for_reason(why)
    for f in getattr(result, "findings", ()):
        rows = [r for grp in d.conflicts for r in grp] if f.code == "conflicting_answers" else rows_of_ids(s, list(f.example_ids)).tolist()
        s.group(f.code, f.severity, f.message, f.hint)  # listed even when no row could be placed
        for r in rows:
            s.add(r, f.code, f.severity, f.message, f.hint)
    s.cluster = d.cluster_of
    s.dupes = d
    settle_heap()


def _dedup_codes(d: clusters.Dupes | None) -> set[str]:
    if d is None:
        return set()
    return {str(getattr(f, "code", "")) for f in getattr(d.result, "findings", ())}
