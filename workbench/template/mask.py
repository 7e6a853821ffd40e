"""Labels for assistant-only loss, derived twice (generation tags, render-and-diff), cross-checked and verified.

Semantics: with {% generation %} tags the trained tokens are exactly the tokens the tags cover, as
transformers' ``return_assistant_tokens_mask`` marks them (what TRL trains). Without tags, each assistant
turn trains what the model generates for it: from the end of the generation prompt (or the reasoning block
that prompt opens) through the answer and its end-of-turn token. When both apply they are compared, and a
difference is reported with the side that is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.records import Conversation, Rendered
from workbench.template.chat import ConversationLike, Renderer, TemplateError, messages_of, template_kwargs_of
from workbench.template.offsets import Codec, Offsets, tokens_overlapping
from workbench.template.tokenizer import eos_ids_in, model_dir_of
from workbench.template.turns import Turn, diff_spans, locate
from workbench.template.verification import IGNORE, check_labels, select, trained_runs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["IGNORE", "STRATEGIES", "MaskResult", "end_of_turn_ids", "render_and_mask", "trained_runs", "verify"]

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
    "<|call|>",
    "<｜end▁of▁sentence｜>",
)


@dataclass(slots=True)
class MaskResult:
    """One conversation rendered and masked, or the reason it could not be."""

    rendered: Rendered | None
    error: str | None = None
    derivation: Derivation = "diff"
    agree: bool | None = None  # generation tags vs render-and-diff; None when only one applies
    disagreement: str | None = None  # how they differ and which side is off, when they do
    problems: list[str] = field(default_factory=list)  # the mask used is (or may be) wrong
    notes: list[str] = field(default_factory=list)  # how it was found (e.g. non-prefix-preserving template)
    # template text trained: ("before", text) ahead of an answer; ("tags_before"|"tags_after", text) what tags add
    written: list[tuple[str, str]] = field(default_factory=list)
    starts: list[int] | None = None  # per trained region, where generation starts (render-and-diff); None for tag labels
    index: int = 0  # position in the input stream
    id: str | None = None  # Conversation.id when given one
    length: int = 0  # tokens before max_length truncation
    prompt: str | None = None  # the inference prompt of the last assistant turn (render-and-diff renders it; None for the first message)
    prompt_ids: list[int] | None = None  # its token ids, when they follow from the full render's (Codec.prefix_ids)

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


class _Context:
    """Per-tokenizer state: the compiled template, the end-of-turn ids, a batch encoder/decoder."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.renderer = Renderer(tokenizer)
        self.eot = set(end_of_turn_ids(tokenizer))
        self.codec = Codec(tokenizer)
        self._blank: dict[int, bool] = {}
        self._short: dict[tuple[int, ...], str] = {}

    def decode_many(self, seqs: list[list[int]]) -> list[str]:
        return self.codec.decode_many(seqs)

    def decode_short(self, ids: list[int]) -> str:
        """``ids`` decoded; a few tokens (the template text a tag run adds, "\\n") are remembered."""
        if len(ids) > 8:
            return self.decode_many([ids])[0]
        key = tuple(ids)
        hit = self._short.get(key)
        if hit is None:
            if len(self._short) >= 4096:
                self._short.clear()
            hit = self._short[key] = self.decode_many([ids])[0]
        return hit

    def encode_many(self, texts: list[str]) -> tuple[list[list[int]], list[Offsets]]:
        return self.codec.encode_many(texts)

    def is_blank(self, token: int) -> bool:
        """Does ``token`` decode to whitespace only ("\\n"; Phi's "▁", which decodes to nothing on its own)?"""
        hit = self._blank.get(token)
        if hit is None:
            hit = self._blank[token] = not self.decode_many([[token]])[0].strip()
        return hit


# --- the generation tags ----------------------------------------------------------------------


def tag_runs(gen_chars: list[tuple[int, int]], ids: list[int], off: Offsets, eot: set[int], train_eot: bool) -> list[tuple[int, int]]:
    """The tokens the {% generation %} blocks cover, exactly as ``return_assistant_tokens_mask`` marks them (every
    token overlapping a block), as contiguous runs; without ``train_eot``, each run stops before its last
    end-of-turn token."""
    runs: list[tuple[int, int]] = []
    lo = 0
    for cs, ce in gen_chars:
        if ce <= cs:
            continue
        a, b = tokens_overlapping(off, cs, ce, lo)
        if a >= b:
            continue
        if runs and a <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(b, runs[-1][1]))
        else:
            runs.append((a, b))
        lo = b
    if not train_eot:
        cut = []
        for a, b in runs:
            last = max((i for i in range(a, b) if ids[i] in eot), default=-1)
            if last > a:
                cut.append((a, last))
            elif last < 0:
                cut.append((a, b))
        runs = cut
    return runs


def _compare(
    ctx: _Context,
    msgs: list[dict[str, Any]],
    turns: list[Turn],
    diff: list[tuple[int, int]],
    diff_problems: list[str],
    tags: list[tuple[int, int]],
    ids: list[int],
    off: Offsets,
    result: MaskResult,
) -> None:
    """Do the tags train what the render-and-diff derivation finds? They agree when each tag run covers its
    turn's region and anything more they cover is template text of that turn (TRL's "\n" after <|im_end|>,
    gpt-oss's <|start|>assistant, DeepSeek's <｜Assistant｜>): that extra is noted, not a difference."""
    n_assistant = sum(1 for m in msgs if m.get("role") == "assistant")

    def show(a: int, b: int) -> str:
        return repr(ctx.decode_many([ids[a:b]])[0])

    def covers_content(run: tuple[int, int], t: Turn) -> bool:
        return t.content_end > t.content_at and off.starts[run[0]] <= t.content_at and off.ends[run[1] - 1] >= t.content_end

    off_side: str | None = None
    if diff_problems or len(turns) < n_assistant:
        why = diff_problems[0] if diff_problems else f"it located {len(turns)} of {n_assistant} assistant turn(s)"
        if len(tags) == len(turns) and all(covers_content(r, t) for r, t in zip(tags, turns)):
            off_side = f"the render-and-diff derivation is off ({why}); the tags are used"
        else:
            off_side = f"both are in doubt: the render-and-diff derivation failed ({why}) and the tags mark {len(tags)} region(s)"
    elif len(tags) != len(diff):
        off_side = f"the tags are off: they mark {len(tags)} region(s) for {len(diff)} assistant turn(s) ({', '.join(show(a, b) for a, b in tags[:3])})"
    else:
        extra: list[tuple[str, str]] = []
        for (ta, tb), (da, db), t in zip(tags, diff, turns):
            if ta > da or tb < db:
                missing = [(x, y) for x, y in ((da, min(ta, db)), (max(tb, da), db)) if y > x]
                off_side = f"the tags are off: they leave out {', '.join(show(x, y) for x, y in missing)} of message {t.message}"
                break
            if (ta < da and off.starts[ta] < t.lo) or (tb > db and off.ends[tb - 1] > t.bound):
                off_side = f"the tags are off: they reach into the text of another message ({show(ta, tb)} for message {t.message})"
                break
            if ta < da:
                extra.append(("tags_before", ctx.decode_short(ids[ta:da])))
            if tb > db:
                extra.append(("tags_after", ctx.decode_short(ids[db:tb])))
        if off_side is None:
            result.agree = True
            result.written += extra
            return
    result.agree = False
    result.disagreement = (
        f"generation tags and render-and-diff disagree: {off_side}. "
        f"Tags train [{', '.join(show(a, b) for a, b in tags)}]; the diff trains [{', '.join(show(a, b) for a, b in diff)}]"
    )


# --- one conversation -------------------------------------------------------------------------


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
    """Labels for one render: ``msgs`` as the template was given them (``Renderer.prepare``)."""
    if not any(m.get("role") == "assistant" for m in msgs) and strategy != "all":
        result.error = "no assistant message to train on"
        return result
    diff_problems: list[str] = []
    prompts: dict[int, str | None] = {}
    turns = locate(ctx.renderer, msgs, full, result.notes, prompts)
    last = max((k for k, m in enumerate(msgs) if m.get("role") == "assistant"), default=0)
    result.prompt = prompts.get(last)
    spans = diff_spans(turns, ids, off, ctx.eot, train_eot, diff_problems)
    result.derivation = "diff"
    result.starts = [a for a, b in select(spans, strategy) if b > a]
    if gen_chars is not None:
        result.starts = None  # TRL trains what the tags cover, the generation prompt's tokens included
        tags = tag_runs(gen_chars, ids, off, ctx.eot, train_eot)
        _compare(ctx, msgs, turns, spans, diff_problems, tags, ids, off, result)
        spans = tags
        result.derivation = "generation_tags"
    else:
        result.problems.extend(diff_problems)
    spans = [s for s in select(spans, strategy) if s[1] > s[0]]
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
        result.notes.append(f"truncated from {len(ids)} to {max_length} tokens; {cut} trained region(s) cut")
        ids, labels = ids[:max_length], labels[:max_length]
        spans = [(a, min(b, max_length)) for a, b in spans if a < max_length]
    result.rendered = Rendered(list(ids), labels, spans, full)
    return result


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
    Both derivations run when the template has {% generation %} tags; the tags' tokens are trained
    and a difference is reported in ``result.disagreement``. With ``check``, the mask is verified
    (see ``verify``) and problems land in ``result.problems``. A template error is returned in
    ``result.error``, never raised.
    """
    _check_strategy(strategy)
    result = MaskResult(None, id=conv.id if isinstance(conv, Conversation) else None)
    try:
        ctx = _context(tokenizer)
        msgs = ctx.renderer.prepare(messages_of(conv))
        full, gen = ctx.renderer.render(msgs, spans=True)
    except TemplateError as e:
        result.error = e.message
        return result
    ids, offsets = ctx.encode_many([full])
    _assemble(ctx, msgs, full, gen if ctx.renderer.has_tags else None, ids[0], offsets[0], strategy, train_eot, max_length, result)
    if check and result.rendered is not None:
        truncated = max_length is not None and result.length > max_length
        result.problems.extend(
            check_labels(ctx, msgs, result.rendered, strategy, train_eot, truncated, written=result.written, starts=result.starts)
        )
        tidy_written(result)
    return result


def tidy_written(result: MaskResult) -> None:
    """Template text before an answer, less what the tags add ahead of the generated part (noted apart)."""
    ahead = [t for w, t in result.written if w == "tags_before"]
    tidy: list[tuple[str, str]] = []
    for where, text in result.written:
        if where == "before":
            for t in ahead:
                if text.startswith(t):
                    text = text[len(t) :]
            if not text.strip():
                continue
        tidy.append((where, text))
    result.written = tidy


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        from workbench.errors import UsageError

        raise UsageError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")


_CTX: dict[int, _Context] = {}


def _context(tokenizer: PreTrainedTokenizerBase) -> _Context:
    ctx = _CTX.get(id(tokenizer))
    if (
        ctx is None
        or ctx.tokenizer is not tokenizer
        or ctx.renderer.template != tokenizer.get_chat_template()
        or ctx.renderer.template_kwargs != template_kwargs_of(tokenizer)
    ):
        if not tokenizer.chat_template:
            raise TemplateError("the tokenizer has no chat template", "pass --template my.jinja")
        ctx = _Context(tokenizer)
        if len(_CTX) >= 8:  # contexts hold their tokenizer; keep only a few alive
            _CTX.clear()
        _CTX[id(tokenizer)] = ctx
    return ctx


def verify(
    tokenizer: PreTrainedTokenizerBase,
    conversation: ConversationLike,
    rendered: Rendered,
    *,
    strategy: str = "assistant",
    train_eot: bool = True,
) -> list[str]:
    """Problems with ``rendered``'s labels: each trained region must be one assistant turn's answer, preceded
    at most by the template's own text for that turn (a reasoning block holding the turn's reasoning, a
    channel header; never another message's text) and closed by its end-of-turn token when ``train_eot``."""
    ctx = _context(tokenizer)
    msgs = ctx.renderer.prepare(messages_of(conversation))
    ids, offsets = ctx.encode_many([rendered.text])
    starts = None
    if ids[0] == rendered.input_ids:  # where each turn's generated text starts, by render-and-diff
        spans = diff_spans(locate(ctx.renderer, msgs, rendered.text, []), ids[0], offsets[0], ctx.eot, train_eot, [])
        starts = [a for a, b in select(spans, strategy) if b > a]
    return check_labels(ctx, msgs, rendered, strategy, train_eot, truncated=False, starts=starts)
