"""Labels for assistant-only loss, derived twice (generation tags, render-and-diff), cross-checked and verified."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.records import Conversation, Rendered
from workbench.template.offsets import Codec, Offsets, tokens_overlapping
from workbench.template.chat import ConversationLike, Renderer, TemplateError, messages_of
from workbench.template.tokenizer import eos_ids_in, model_dir_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
Strategy = Literal["assistant", "last", "all"]
STRATEGIES: tuple[str, ...] = ("assistant", "last", "all")
Derivation = Literal["generation_tags", "diff"]

# Tokens that close a turn in the families we know; only those the vocabulary holds count.
END_OF_TURN_TOKENS: tuple[str, ...] = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<eos>",
    "<|return|>",
    "<｜end▁of▁sentence｜>",
)


@dataclass(slots=True)
class MaskResult:
    """One conversation rendered and masked, or the reason it could not be."""

    rendered: Rendered | None
    error: str | None = None
    derivation: Derivation = "diff"
    agree: bool | None = None  # generation tags vs render-and-diff; None when only one applies
    problems: list[str] = field(default_factory=list)  # the mask is (or may be) wrong
    notes: list[str] = field(default_factory=list)  # how it was found (e.g. non-prefix-preserving template)
    index: int = 0  # position in the input stream
    id: str | None = None  # Conversation.id when given one
    length: int = 0  # tokens before max_length truncation

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems


# --- end of turn ------------------------------------------------------------------------------

_EOT_CACHE: dict[int, tuple[Any, list[int]]] = {}


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids that can close an assistant turn: the tokenizer's EOS, the model folder's generation_config
    eos ids, and the known end-of-turn tokens (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``, ...)
    that this vocabulary holds as special tokens."""
    hit = _EOT_CACHE.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    folder = model_dir_of(tokenizer)
    if folder is not None:
        ids += [i for i in eos_ids_in(folder / "generation_config.json") or [] if i not in ids]
    added = tokenizer.get_added_vocab()
    special = set(tokenizer.all_special_tokens)
    for tok in END_OF_TURN_TOKENS:
        i = added.get(tok)
        if i is None and tok in special:
            i = tokenizer.convert_tokens_to_ids(tok)
        if i is not None and i != tokenizer.unk_token_id and i not in ids:
            ids.append(int(i))
    if len(_EOT_CACHE) >= 8:
        _EOT_CACHE.clear()
    _EOT_CACHE[id(tokenizer)] = (tokenizer, ids)
    return ids


# --- the two derivations ----------------------------------------------------------------------


@dataclass(slots=True)
class _Turn:
    message: int  # index of the assistant message
    start: int  # char where the model starts generating (end of the generation prompt)
    content_end: int  # char just after the content (== start when the content was not found)
    bound: int  # char where the next message's content begins (the end-of-turn must come before)


class _Context:
    """Per-tokenizer state: the compiled template, the end-of-turn ids, a batch encoder/decoder."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.renderer = Renderer(tokenizer)
        self.eot = set(end_of_turn_ids(tokenizer))
        self.codec = Codec(tokenizer)

    def decode_many(self, seqs: list[list[int]]) -> list[str]:
        return self.codec.decode_many(seqs)

    def encode_many(self, texts: list[str]) -> tuple[list[list[int]], list[Offsets]]:
        return self.codec.encode_many(texts)


def _diff_turns(ctx: _Context, msgs: list[dict[str, Any]], full: str, notes: list[str]) -> list[_Turn]:
    """Template-agnostic: where each assistant turn's generated text starts and its content ends, found by
    rendering each prefix with the generation prompt and locating it in the full render."""
    r = ctx.renderer
    turns: list[_Turn] = []
    cursor = 0
    for k, m in enumerate(msgs):
        if m.get("role") != "assistant":
            continue
        start = -1
        prefix = None
        if k > 0:
            try:
                prefix, _ = r.render(msgs[:k], add_generation_prompt=True)
            except TemplateError:
                prefix = None
        if prefix is not None and len(prefix) >= cursor and full.startswith(prefix):
            start = len(prefix)
        else:
            start = _search_turn_start(r, msgs, k, full, cursor)
            notes.append(
                f"message {k}: the template is not prefix-preserving here; "
                + ("turn located by searching the render" if start >= 0 else "turn not located")
            )
            if start < 0:
                continue
        content = str(m.get("content") or "")
        content_end = start
        if content:
            at, found = _find_content(full, content, start)
            if at < 0:
                notes.append(f"message {k}: its content does not appear in the render (the template rewrites it)")
            else:
                gap = full[start:at]
                if gap.strip():
                    notes.append(f"message {k}: the template inserts {gap!r} before the content (trained)")
                content_end = at + len(found)
        bound = _next_content(full, msgs, k, content_end)
        turns.append(_Turn(k, start, content_end, bound))
        cursor = content_end
    return turns


def _find_content(full: str, content: str, start: int) -> tuple[int, str]:
    at = full.find(content, start)
    if at >= 0:
        return at, content
    stripped = content.strip()  # templates that trim (Llama-3, gemma)
    if stripped:
        at = full.find(stripped, start)
        if at >= 0:
            return at, stripped
    return -1, content


def _search_turn_start(r: Renderer, msgs: list[dict[str, Any]], k: int, full: str, cursor: int) -> int:
    """The generation prompt's end after ``cursor``: the prompt is what add_generation_prompt appends."""
    try:
        with_prompt, _ = r.render(msgs[:k], add_generation_prompt=True) if k else ("", [])
        without, _ = r.render(msgs[:k], add_generation_prompt=False) if k else ("", [])
    except TemplateError:
        with_prompt = without = ""
    prompt = with_prompt[len(without) :] if with_prompt.startswith(without) else ""
    if prompt:
        at = full.find(prompt, cursor)
        if at >= 0:
            return at + len(prompt)
    # No generation prompt (Mistral's [INST] layout): the turn starts where its content does.
    content = str(msgs[k].get("content") or "")
    at, _ = _find_content(full, content, cursor) if content else (-1, "")
    return at


def _next_content(full: str, msgs: list[dict[str, Any]], k: int, after: int) -> int:
    for m in msgs[k + 1 :]:
        content = str(m.get("content") or "").strip()
        if content:
            at = full.find(content, after)
            if at >= 0:
                return at
    return len(full)


def _diff_spans(
    ctx: _Context, turns: list[_Turn], ids: list[int], off: Offsets, train_eot: bool, problems: list[str]
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    lo = 0
    for t in turns:
        if t.content_end > t.start:
            a, b = tokens_overlapping(off, t.start, t.content_end, lo)
        else:  # no content located: the turn is just its end-of-turn token
            a = b = bisect_left(off.starts, t.start, lo)
        # The first end-of-turn token after the content, before the next message begins.
        e = b
        starts = off.starts
        while e < len(ids) and starts[e] < t.bound and ids[e] not in ctx.eot:
            e += 1
        if e < len(ids) and starts[e] < t.bound and ids[e] in ctx.eot:
            end = e + 1 if train_eot else b
        else:
            problems.append(f"message {t.message}: no end-of-turn token follows the assistant content")
            end = b
        spans.append((a, end))
        lo = end
    return spans


def _tag_spans(
    ctx: _Context,
    gen_chars: list[tuple[int, int]],
    full: str,
    ids: list[int],
    off: Offsets,
    train_eot: bool,
) -> list[tuple[int, int]]:
    """Tokens inside {% generation %} blocks, trimmed to the turn: leading whitespace-only tokens
    (TRL's templates open the block before the "\\n") and whatever follows the last end-of-turn token."""
    spans: list[tuple[int, int]] = []
    lo = 0
    for cs, ce in gen_chars:
        a, b = tokens_overlapping(off, cs, ce, lo)
        lo = b
        while a < b and not full[off.starts[a] : off.ends[a]].strip() and ids[a] not in ctx.eot:
            a += 1
        last_eot = max((i for i in range(a, b) if ids[i] in ctx.eot), default=-1)
        if last_eot >= 0:
            b = last_eot + 1 if train_eot else last_eot
        if a < b:
            spans.append((a, b))
    return spans


# --- one conversation -------------------------------------------------------------------------


def _select(spans: list[tuple[int, int]], strategy: str) -> list[tuple[int, int]]:
    return spans[-1:] if strategy == "last" else spans


def _assemble(
    ctx: _Context,
    msgs: list[dict[str, Any]],
    full: str,
    gen_chars: list[tuple[int, int]] | None,
    ids: list[int],
    off: Offsets,
    strategy: str,
    train_eot: bool,
    max_length: int | None,
    result: MaskResult,
) -> MaskResult:
    if not any(m.get("role") == "assistant" for m in msgs) and strategy != "all":
        result.error = "no assistant message to train on"
        return result
    problems, notes = result.problems, result.notes
    diff_problems: list[str] = []
    turns = _diff_turns(ctx, msgs, full, notes)
    diff = _diff_spans(ctx, turns, ids, off, train_eot, diff_problems)
    spans = diff
    result.derivation = "diff"
    if gen_chars is not None:
        tags = _tag_spans(ctx, gen_chars, full, ids, off, train_eot)
        result.agree = tags == diff
        if not result.agree:
            problems.append(_disagreement(ctx, ids, tags, diff))
        spans = tags
        result.derivation = "generation_tags"
        if not result.agree:
            problems.extend(diff_problems)
    else:
        problems.extend(diff_problems)
    spans = [s for s in _select(spans, strategy) if s[1] > s[0]]
    labels = [IGNORE] * len(ids)
    if strategy == "all":
        labels = list(ids)
        spans = [(0, len(ids))] if ids else []
    else:
        for a, b in spans:
            labels[a:b] = ids[a:b]
    result.length = len(ids)
    if max_length is not None and len(ids) > max_length:
        cut = sum(1 for a, b in spans if b > max_length)
        notes.append(f"truncated from {len(ids)} to {max_length} tokens; {cut} trained region(s) cut")
        ids, labels = ids[:max_length], labels[:max_length]
        spans = [(a, min(b, max_length)) for a, b in spans if a < max_length]
    result.rendered = Rendered(list(ids), labels, spans, full)
    return result


def _disagreement(ctx: _Context, ids: list[int], tags: list[tuple[int, int]], diff: list[tuple[int, int]]) -> str:
    def show(spans: list[tuple[int, int]]) -> str:
        texts = ctx.decode_many([ids[a:b] for a, b in spans])
        return "[" + ", ".join(f"{a}:{b} {t!r}" for (a, b), t in zip(spans, texts)) + "]"

    return f"generation tags and render-diff disagree: tags train {show(tags)}, diff trains {show(diff)}"


def render_and_mask(
    tokenizer: PreTrainedTokenizerBase,
    conv: ConversationLike,
    *,
    strategy: str = "assistant",
    train_eot: bool = True,
    max_length: int | None = None,
    check: bool = True,
) -> MaskResult:
    """Render ``conv`` with the tokenizer's chat template and label it for assistant-only loss.

    strategy: "assistant" (every assistant turn), "last" (the last one), "all" (every token).
    Both derivations run when the template has {% generation %} tags; they must agree. With
    ``check``, the mask is verified (see ``verify``) and problems land in ``result.problems``.
    A template error is returned in ``result.error``, never raised.
    """
    _check_strategy(strategy)
    result = MaskResult(None, id=conv.id if isinstance(conv, Conversation) else None)
    try:
        ctx = _context(tokenizer)
        msgs = messages_of(conv)
        full, gen = ctx.renderer.render(msgs, spans=True)
    except TemplateError as e:
        result.error = e.message
        return result
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    _assemble(
        ctx, msgs, full, gen if ctx.renderer.has_tags else None, enc["input_ids"], Offsets.of(enc["offset_mapping"]),
        strategy, train_eot, max_length, result,
    )
    if check and result.rendered is not None:
        truncated = max_length is not None and result.length > max_length
        result.problems.extend(_verify(ctx, msgs, result.rendered, strategy, train_eot, truncated))
    return result


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        from workbench.errors import UsageError

        raise UsageError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")


_CTX: dict[int, _Context] = {}


def _context(tokenizer: PreTrainedTokenizerBase) -> _Context:
    ctx = _CTX.get(id(tokenizer))
    if ctx is None or ctx.tokenizer is not tokenizer or ctx.renderer.template != tokenizer.get_chat_template():
        if not tokenizer.chat_template:
            raise TemplateError("the tokenizer has no chat template", "pass --template my.jinja")
        ctx = _Context(tokenizer)
        if len(_CTX) >= 8:  # contexts hold their tokenizer; keep only a few alive
            _CTX.clear()
        _CTX[id(tokenizer)] = ctx
    return ctx


# --- verification -----------------------------------------------------------------------------


def trained_runs(labels: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each contiguous run of trained labels."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, x in enumerate(labels):
        if x != IGNORE and start is None:
            start = i
        elif x == IGNORE and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(labels)))
    return runs


def verify(
    tokenizer: PreTrainedTokenizerBase,
    conversation: ConversationLike,
    rendered: Rendered,
    *,
    strategy: str = "assistant",
    train_eot: bool = True,
) -> list[str]:
    """Problems with ``rendered``'s labels: the trained tokens must decode to exactly this example's
    assistant contents (each followed by an end-of-turn token when ``train_eot``), and nothing else."""
    ctx = _context(tokenizer)
    return _verify(ctx, messages_of(conversation), rendered, strategy, train_eot, truncated=False)


def _bodies(ctx: _Context, ids: list[int], runs: list[tuple[int, int]], train_eot: bool) -> tuple[list[list[int]], list[int | None]]:
    """Each trained run split into its body and (when it ends with one) its end-of-turn token."""
    bodies: list[list[int]] = []
    tails: list[int | None] = []
    for a, b in runs:
        last = ids[b - 1] if b > a else None
        if train_eot and last in ctx.eot:
            bodies.append(ids[a : b - 1])
            tails.append(last)
        else:
            bodies.append(ids[a:b])
            tails.append(last if last in ctx.eot else None)
    return bodies, tails


def _verify(
    ctx: _Context,
    msgs: list[dict[str, Any]],
    rendered: Rendered,
    strategy: str,
    train_eot: bool,
    truncated: bool,
    texts: list[str] | None = None,
) -> list[str]:
    """``texts``: the bodies already decoded (the batched path decodes a whole batch in one call)."""
    ids, labels = rendered.input_ids, rendered.labels
    if len(ids) != len(labels):
        return [f"{len(labels)} labels for {len(ids)} tokens"]
    bad = [i for i, (x, y) in enumerate(zip(ids, labels)) if y != IGNORE and y != x]
    if bad:
        return [f"label {labels[bad[0]]} at token {bad[0]} is not its input id {ids[bad[0]]} ({len(bad)} such)"]
    runs = trained_runs(labels)
    if strategy == "all":
        return [] if runs == ([(0, len(ids))] if ids else []) else ["strategy 'all' but some tokens are untrained"]
    problems: list[str] = []
    if runs != [tuple(s) for s in rendered.assistant_spans]:
        problems.append(f"assistant_spans {rendered.assistant_spans} do not match the trained runs {runs}")
    expected = [(k, str(m.get("content") or "")) for k, m in enumerate(msgs) if m.get("role") == "assistant"]
    expected = _select(expected, strategy)  # type: ignore[arg-type]
    if truncated:
        expected = expected[: len(runs)]
    if len(runs) != len(expected):
        problems.append(f"{len(runs)} trained region(s) for {len(expected)} assistant message(s) to train")
    bodies, tails = _bodies(ctx, ids, runs, train_eot)
    if texts is None or len(texts) != len(bodies):
        texts = ctx.decode_many(bodies)
    cut_last = truncated and len(runs) > 0
    for n, ((k, content), (a, b), text, tail) in enumerate(zip(expected, runs, texts, tails)):
        is_cut = cut_last and n == len(runs) - 1 and b == len(ids)
        if train_eot and tail is None and not is_cut:
            end = ctx.decode_many([ids[b - 1 : b]])[0] if b > a else ""
            problems.append(f"message {k}: the trained region ends with {end!r}, not an end-of-turn token")
        if not train_eot and tail is not None:
            problems.append(f"message {k}: the end-of-turn token is trained although train_eot is off")
        if text == content or text == content.strip():
            continue
        if is_cut and (content.startswith(text) or content.strip().startswith(text)):
            continue
        problems.append(f"message {k}: trained text differs from the assistant content: {_diff(content, text)}")
    for (a, b) in runs[len(expected) :]:
        problems.append(f"tokens {a}:{b} are trained but belong to no assistant message: {ctx.decode_many([ids[a:b]])[0]!r}")
    return problems


def _diff(expected: str, got: str) -> str:
    i = 0
    while i < min(len(expected), len(got)) and expected[i] == got[i]:
        i += 1
    lo = max(0, i - 20)
    return f"at char {i}: expected …{expected[lo:i + 30]!r}…, trained …{got[lo:i + 30]!r}…"
