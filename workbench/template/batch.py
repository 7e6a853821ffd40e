"""Render, mask and verify many conversations (batched, across processes), and pick rows for the `mask` command."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from workbench.records import Conversation
from workbench.template.chat import ConversationLike, TemplateError, messages_of
from workbench.template.mask import IGNORE, MaskResult, _assemble, _check_strategy, _Context, _context, render_and_mask, tidy_written
from workbench.template.verification import bodies, check_labels

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


# --- memory bounds ----------------------------------------------------------------------------

# Tokenising costs a few hundred bytes per character (ids, offsets and labels per token), so a 50 MB row
# would take gigabytes: rows longer than this are reported, not tokenised (no realistic max_length fits
# one), and a batch closes at BATCH_CHARS, so memory follows the rows being rendered, not the batch size.
MAX_CHARS = 1_000_000
BATCH_CHARS = 1_000_000
TOO_LONG = f"too long to render: over {MAX_CHARS:,} characters (not tokenised; far over any max length)"


def _chars(msgs: Sequence[dict[str, Any]]) -> int:
    return sum(len(c) for m in msgs if isinstance(c := m.get("content"), str))


def render_bounded(tokenizer: PreTrainedTokenizerBase, conversation: ConversationLike, **kwargs: Any) -> MaskResult:
    """``render_and_mask``, except that a row over MAX_CHARS characters is not tokenised: its result
    carries the error TOO_LONG (the TUI and `mask` show one row at a time through this)."""
    if _chars(messages_of(conversation)) > MAX_CHARS:
        return MaskResult(None, error=TOO_LONG, id=conversation.id if isinstance(conversation, Conversation) else None)
    return render_and_mask(tokenizer, conversation, **kwargs)


# --- many conversations -----------------------------------------------------------------------

_WORKER_CTX: _Context | None = None

Item = tuple[int, str | None, list[dict[str, Any]]]  # (index in the stream, row id, messages)
# A digest reduces a masked batch where it was masked (in the worker process): (context, items, results) -> any
# picklable summary. Only the summary travels back, so a pool sends kilobytes per batch, not token lists.
Digest = Callable[[_Context, list[Item], list[MaskResult]], Any]


def _mask_batch(
    ctx: _Context,
    items: list[Item],
    strategy: str,
    train_eot: bool,
    max_length: int | None,
    check: bool,
) -> list[MaskResult]:
    results: list[MaskResult] = []
    todo: list[tuple[MaskResult, list[dict[str, Any]], str, list[tuple[int, int]]]] = []
    for index, cid, msgs in items:
        res = MaskResult(None, index=index, id=cid)
        results.append(res)
        if _chars(msgs) > MAX_CHARS:
            res.error = TOO_LONG
            continue
        try:
            msgs = ctx.renderer.prepare(msgs)
            full, gen = ctx.renderer.render(msgs, spans=True)
        except TemplateError as e:
            res.error = e.message
            continue
        todo.append((res, msgs, full, gen))
    if not todo:
        return results
    all_ids, all_offsets = ctx.encode_many([t[2] for t in todo])
    tags = ctx.renderer.has_tags
    for (res, msgs, full, gen), ids, off in zip(todo, all_ids, all_offsets):
        _assemble(ctx, msgs, full, gen if tags else None, ids, off, strategy, train_eot, max_length, res)
        if res.prompt is not None:
            res.prompt_ids = ctx.codec.prefix_ids(full, ids, off, res.prompt)
    if not check:
        return results
    # Each trained region's text: a slice of the render where the offsets say it is exactly that, else decoded
    # (one decode call for the batch).
    done = [(res, msgs, off) for (res, msgs, _, _), off in zip(todo, all_offsets) if res.rendered is not None]
    parts = [bodies(ctx, r.rendered) for r, _, _ in done]  # type: ignore[arg-type]
    flat = iter(ctx.decode_many([r.rendered.input_ids[a:c] for (r, _, off), p in zip(done, parts) if not off.whole for a, c in p]))  # type: ignore[union-attr]
    for (res, msgs, off), p in zip(done, parts):
        if off.whole:
            full = res.rendered.text  # type: ignore[union-attr]
            texts = [full[off.starts[a] : off.ends[c - 1]] if c > a else "" for a, c in p]
        else:
            texts = [next(flat) for _ in p]
        truncated = max_length is not None and res.length > max_length
        res.problems.extend(check_labels(ctx, msgs, res.rendered, strategy, train_eot, truncated, texts, res.written, res.starts))  # type: ignore[arg-type]
        tidy_written(res)
    return results


def _worker_init(tokenizer: PreTrainedTokenizerBase) -> None:
    import gc

    global _WORKER_CTX
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # What the fork inherited (the whole dataset, in a check) is never garbage: keep the collector off it, and let it
    # run seldom, as almost nothing a batch makes (token lists, strings) is cyclic. Measured: 8% of a check's CPU.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    _WORKER_CTX = _Context(tokenizer)


GC_THRESHOLD = (20_000, 50, 50)


_GC_LOCK = threading.Lock()
_GC_STATE: list[Any] = [0, None]  # threads masking now, the threshold to restore when the last one is done


@contextmanager
def _seldom_gc() -> Iterator[None]:
    """The garbage collector runs seldom while batches are masked in this process (see ``_worker_init``); the
    threshold comes back when the last thread masking here is done (the TUI masks on several)."""
    import gc

    with _GC_LOCK:
        if _GC_STATE[0] == 0:
            _GC_STATE[1] = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLD)
        _GC_STATE[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_STATE[0] -= 1
            if _GC_STATE[0] == 0:
                gc.set_threshold(*_GC_STATE[1])


def _worker_run(args: tuple[Any, ...]) -> Any:
    assert _WORKER_CTX is not None
    batch, digest, *opts = args
    results = _mask_batch(_WORKER_CTX, batch, *opts)
    if digest is not None:
        return digest(_WORKER_CTX, batch, results)
    for res in results:  # labels follow from ids and spans: half the bytes to send back
        res.prompt = res.prompt_ids = None
        if res.rendered is not None:
            res.rendered.labels = None  # type: ignore[assignment]
    return results


def _relabel(results: list[MaskResult]) -> list[MaskResult]:
    for res in results:
        r = res.rendered
        if r is not None and r.labels is None:
            labels = [IGNORE] * len(r.input_ids)
            for a, b in r.assistant_spans:
                labels[a:b] = r.input_ids[a:b]
            r.labels = labels
    return results


def render_many(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[ConversationLike],
    *,
    strategy: str = "assistant",
    train_eot: bool = True,
    max_length: int | None = None,
    check: bool = True,
    workers: int | None = None,
    batch_size: int = 256,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[MaskResult]:
    """``render_and_mask`` (and ``verify``) over a stream, in input order; each row's error stays in its result.

    Rows are tokenised in batches; with ``workers`` > 1 (default: the CPUs this process may use,
    at most 8) batches run in a process pool. ``progress(done, None)`` is called per batch.
    """
    for results in _run(tokenizer, conversations, None, None, strategy, train_eot, max_length, check, workers, batch_size, progress):
        yield from _relabel(results)


def digest_many(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[ConversationLike],
    digest: Digest,
    *,
    ids: Sequence[str] | None = None,
    prepared: bool = False,
    strategy: str = "assistant",
    train_eot: bool = True,
    max_length: int | None = None,
    check: bool = True,
    workers: int | None = None,
    batch_size: int = 256,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[Any]:
    """As ``render_many``, but each batch's results go through ``digest(ctx, items, results)`` in the process that
    made them, and the digests come back in input order: the per-row work of a check runs on every core and
    only its summary crosses between processes. ``digest`` must be picklable (a module-level function or a
    ``functools.partial`` of one). ``ids``: the row ids the items carry (default: ``Conversation.id`` or None).
    ``prepared``: the conversations are already ``messages_of``'s lists (used as they are, not converted again)."""
    yield from _run(tokenizer, conversations, digest, ids, strategy, train_eot, max_length, check, workers, batch_size, progress, prepared)


def _run(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[ConversationLike],
    digest: Digest | None,
    ids: Sequence[str] | None,
    strategy: str,
    train_eot: bool,
    max_length: int | None,
    check: bool,
    workers: int | None,
    batch_size: int,
    progress: Callable[[int, int | None], None] | None,
    prepared: bool = False,
) -> Iterator[Any]:
    """Per batch, its results (or its digest), in input order."""
    _check_strategy(strategy)
    batches = _batches(conversations, batch_size, ids, prepared)
    try:
        ctx = _context(tokenizer)
    except TemplateError as e:
        for batch in batches:
            results = [MaskResult(None, error=e.message, index=i, id=cid) for i, cid, _ in batch]
            yield results if digest is None else digest(_Failed(tokenizer), batch, results)
        return
    if workers is None:
        workers = min(8, _cpu_count())
    head: list[list[Item]] = []
    if workers > 1:  # a pool pays off only past a few batches per worker
        for batch in batches:
            head.append(batch)
            if len(head) > 2 * workers:
                break
        if len(head) <= 2 * workers:
            workers = 1
    batches = itertools.chain(head, batches)
    done = 0
    if workers <= 1:
        for batch in batches:
            with _seldom_gc():
                results = _mask_batch(ctx, batch, strategy, train_eot, max_length, check)
                out = results if digest is None else digest(ctx, batch, results)
            yield out
            done += len(batch)
            if progress:
                progress(done, None)
        return
    yield from _pooled(tokenizer, batches, workers, (digest, strategy, train_eot, max_length, check), progress)


class _Failed:
    """What a digest gets for its context when the tokenizer has no usable template (every row has the error)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.renderer = None


def _pooled(
    tokenizer: PreTrainedTokenizerBase,
    batches: Iterator[list[Item]],
    workers: int,
    opts: tuple[Any, ...],
    progress: Callable[[int, int | None], None] | None,
) -> Iterator[Any]:
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the loaded tokenizer with the workers for free; the Rust pool must not be live across it
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    done = 0
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_worker_init, initargs=(tokenizer,)) as pool:
        pending: deque[Any] = deque()
        for batch in batches:
            pending.append((len(batch), pool.submit(_worker_run, (batch, *opts))))
            if len(pending) >= workers * 3:  # bounded read-ahead keeps memory flat on long streams
                n, fut = pending.popleft()
                yield fut.result()
                done += n
                if progress:
                    progress(done, None)
        while pending:
            n, fut = pending.popleft()
            yield fut.result()
            done += n
            if progress:
                progress(done, None)


def _batches(
    conversations: Iterable[ConversationLike], size: int, ids: Sequence[str] | None = None, prepared: bool = False
) -> Iterator[list[Item]]:
    batch: list[Item] = []
    chars = 0
    for i, conv in enumerate(conversations):
        msgs = conv if prepared else messages_of(conv)  # type: ignore[assignment]
        cid = ids[i] if ids is not None else conv.id if isinstance(conv, Conversation) else None
        batch.append((i, cid, msgs))
        n = _chars(msgs)
        chars += n if n <= MAX_CHARS else 0  # an over-long row is not tokenised, so it costs nothing
        if len(batch) >= size or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- inspection (the `mask` command) ----------------------------------------------------------


def pick(
    conversations: Sequence[Conversation], *, index: int | None = None, id: str | None = None, limit: int = 5
) -> list[tuple[int, Conversation]]:
    """The rows to show: one by 0-based ``index`` or by ``id`` (a unique prefix is enough), else the first ``limit``."""
    from workbench.errors import UsageError

    if index is not None and id is not None:
        raise UsageError("give --index or --id, not both")
    if index is not None:
        if not 0 <= index < len(conversations):
            raise UsageError(f"--index {index} is out of range: {len(conversations)} conversation(s) were read")
        return [(index, conversations[index])]
    if id is not None:
        hits = [(i, c) for i, c in enumerate(conversations) if c.id.startswith(id)]
        if not hits:
            raise UsageError(f"--id {id!r} matches no conversation")
        if len({c.id for _, c in hits}) > 1:
            raise UsageError(f"--id {id!r} matches {len(hits)} conversations; give more of it")
        return hits[:1]
    if limit <= 0:
        raise UsageError(f"--limit must be positive, got {limit}")
    return list(enumerate(conversations[:limit]))


def inspect(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[tuple[int, Conversation]],
    *,
    strategy: str = "assistant",
    train_eot: bool = True,
    max_length: int | None = None,
) -> list[tuple[int, Conversation, MaskResult]]:
    """Render, mask and verify the picked rows (index in the input, conversation, result)."""
    out = []
    for i, conv in rows:
        res = render_bounded(tokenizer, conv, strategy=strategy, train_eot=train_eot, max_length=max_length)
        res.index = i
        out.append((i, conv, res))
    return out


def result_dict(tokenizer: PreTrainedTokenizerBase, conv: Conversation | None, res: MaskResult) -> dict[str, Any]:
    """A JSON-ready view of one result: ids, tokens and labels per position, plus what was found."""
    d: dict[str, Any] = {
        "index": res.index,
        "id": res.id or (conv.id if conv is not None else None),
        "source": str(conv.source) if conv is not None else None,
        "error": res.error,
        "derivation": res.derivation if res.rendered is not None else None,
        "agree": res.agree,
        "disagreement": res.disagreement,
        "problems": res.problems,
        "notes": res.notes,
        "template_text": [list(w) for w in res.written],
    }
    if res.rendered is not None:
        r = res.rendered
        d.update(
            input_ids=r.input_ids,
            tokens=[str(t) for t in tokenizer.convert_ids_to_tokens(r.input_ids)],
            labels=r.labels,
            assistant_spans=[list(s) for s in r.assistant_spans],
            trained=r.trained_count,
            length=res.length,
        )
    return d
