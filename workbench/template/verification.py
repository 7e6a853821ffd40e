"""Verify a loss mask token by token: each trained region is one assistant turn's answer, preceded at most by text
the template writes for that turn (a reasoning block with the turn's own reasoning, a channel header) and ended
by its end-of-turn token (plus any whitespace or EOS the generation tags put after it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from workbench.records import Rendered
from workbench.template.reasoning import reasoning_of, split_inline

IGNORE = -100
ELLIPSIS = "…"  # stands for a turn's own reasoning in the template text a row trains
MIN_FOREIGN = 4  # shorter message texts are too common to tell a template's words from a message's


def trained_runs(labels: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each contiguous run of trained labels."""
    # one byte per label (1 = trained) scanned by the regex engine: no Python-level loop over the tokens
    flags = bytes(map(IGNORE.__ne__, labels)) if type(labels) is list else bytes(int(x) != IGNORE for x in labels)
    return [m.span() for m in _RUN.finditer(flags)]


_RUN = re.compile(b"\x01+")


def rendered_runs(rendered: Rendered) -> list[tuple[int, int]]:
    """``trained_runs(rendered.labels)``, found in one list comparison when the labels are exactly what the
    assistant spans say (input ids inside them, IGNORE elsewhere; spans apart and in order, as a mask makes
    them); else by scanning the labels."""
    ids, labels, spans = rendered.input_ids, rendered.labels, rendered.assistant_spans
    n = len(ids)
    if len(labels) == n and all(0 <= a < b <= n for a, b in spans) and all(b < c for (_, b), (c, _) in zip(spans, spans[1:])):
        expected = [IGNORE] * n
        for a, b in spans:
            expected[a:b] = ids[a:b]
        if labels == expected:
            return [(a, b) for a, b in spans]
    return trained_runs(labels)


def select(items: list[Any], strategy: str) -> list[Any]:
    return items[-1:] if strategy == "last" else items


def split_tail(ids: list[int], a: int, b: int, eot: Collection[int], blank: Callable[[int], bool]) -> tuple[int, int | None]:
    """(where the run's closing stretch begins, its first end-of-turn id or None): the stretch is the run's
    trailing end-of-turn tokens and the whitespace among and after them (TRL's tags train "\\n" after
    <|im_end|>; Phi-3's add <|endoftext|> after <|end|>\\n). Whitespace not followed by an end-of-turn is
    the answer's own."""
    i = b
    first_eot: int | None = None
    cut = b
    while i > a and (ids[i - 1] in eot or blank(ids[i - 1])):
        i -= 1
        if ids[i] in eot:
            first_eot, cut = ids[i], i
    return cut, first_eot


class Codec(Protocol):
    """What verification needs of a tokenizer: its end-of-turn ids, a batch decoder, and which ids are blank."""

    eot: Collection[int]

    def decode_many(self, seqs: list[list[int]]) -> list[str]: ...

    def is_blank(self, token: int) -> bool: ...


def check_labels(
    ctx: Codec,
    msgs: list[dict[str, Any]],
    rendered: Rendered,
    strategy: str,
    train_eot: bool,
    truncated: bool,
    texts: list[str] | None = None,
    written: list[tuple[str, str]] | None = None,
    starts: list[int] | None = None,
) -> list[str]:
    """Problems with ``rendered``'s labels for ``msgs`` (as the template was given them). ``texts``: each
    run decoded from its start to its closing stretch, when the caller decoded them in one batch
    (``bodies``). ``written`` collects the template text the regions train: ("before", text) ahead of an
    answer, with the turn's reasoning shown as "…".
    ``starts``: per region, the token where the model starts generating (the render-and-diff derivation's);
    a region that begins earlier trains text the inference prompt already holds (allowed only from tags:
    pass None for tag-derived labels)."""
    ids, labels = rendered.input_ids, rendered.labels
    if len(ids) != len(labels):
        return [f"{len(labels)} labels for {len(ids)} tokens"]
    runs = rendered_runs(rendered)
    if any(labels[a:b] != ids[a:b] for a, b in runs):  # outside the runs every label is IGNORE
        bad = [i for i, (x, y) in enumerate(zip(ids, labels)) if y != IGNORE and y != x]
        return [f"label {labels[bad[0]]} at token {bad[0]} is not its input id {ids[bad[0]]} ({len(bad)} such)"]
    if strategy == "all":
        return [] if runs == ([(0, len(ids))] if ids else []) else ["strategy 'all' but some tokens are untrained"]
    problems: list[str] = []
    if runs != [tuple(s) for s in rendered.assistant_spans]:
        problems.append(f"assistant_spans {rendered.assistant_spans} do not match the trained runs {runs}")
    expected = select([(k, m) for k, m in enumerate(msgs) if m.get("role") == "assistant"], strategy)
    if truncated:
        expected = expected[: len(runs)]
    if len(runs) != len(expected):
        problems.append(f"{len(runs)} trained region(s) for {len(expected)} assistant message(s) to train")
    cuts = [split_tail(ids, a, b, ctx.eot, ctx.is_blank) for a, b in runs]
    if texts is None or len(texts) != len(runs):
        texts = ctx.decode_many([ids[a:c] for (a, _), (c, _) in zip(runs, cuts)])
    others = [str(m.get("content") or "").strip() for m in msgs]
    for n, ((k, m), (a, b), (_, first_eot), text) in enumerate(zip(expected, runs, cuts, texts)):
        is_cut = truncated and n == len(runs) - 1 and b == len(ids)
        if train_eot and first_eot is None and not is_cut:
            end = ctx.decode_many([ids[b - 1 : b]])[0] if b > a else ""
            problems.append(f"message {k}: the trained region ends with {end!r}, not an end-of-turn token")
        if not train_eot and first_eot is not None:
            problems.append(f"message {k}: the end-of-turn token is trained although train_eot is off")
        if starts is not None and len(starts) == len(runs) and a < starts[n]:
            early = ctx.decode_many([ids[a : starts[n]]])[0]
            problems.append(f"message {k}: tokens {a}:{starts[n]} ({early!r}) are trained but come before the turn: the inference prompt holds them")
        content = str(m.get("content") or "").strip()
        body = text.rstrip()
        if content and not body.endswith(content) and "</think>" in content:
            content = split_inline(content)[1].strip()  # the template dropped the inline reasoning (QwQ's history)
        if content and not body.endswith(content):
            if not (is_cut and _cut_inside(content, body)):
                problems.append(f"message {k}: the trained text does not end with the assistant content: {_diff(content, body)}")
            continue
        lead = body[: len(body) - len(content)]
        shown = _without_reasoning(lead, reasoning_of(m))
        plain = shown.replace(ELLIPSIS, "")
        foreign = [j for j, t in enumerate(others) if j != k and len(t) >= MIN_FOREIGN and t in plain]
        if foreign:
            problems.append(f"message {k}: the trained text before the answer holds message {foreign[0]}'s text: {lead[:80]!r}")
        if written is not None and shown.strip():
            written.append(("before", shown))
    for a, b in runs[len(expected) :]:
        problems.append(f"tokens {a}:{b} are trained but belong to no assistant message: {ctx.decode_many([ids[a:b]])[0]!r}")
    return problems


def bodies(ctx: Codec, rendered: Rendered) -> list[tuple[int, int]]:
    """Each trained run from its start to its closing stretch, as tokens [a, c) (what ``check_labels`` compares
    with the answer)."""
    ids = rendered.input_ids
    return [(a, split_tail(ids, a, b, ctx.eot, ctx.is_blank)[0]) for a, b in rendered_runs(rendered)]


def _without_reasoning(lead: str, reasoning: str | None) -> str:
    """``lead`` with the turn's own reasoning replaced by "…" (templates strip its newlines)."""
    if not reasoning:
        return lead
    for r in (reasoning, reasoning.strip("\n"), reasoning.strip()):
        if r and r in lead:
            return lead.replace(r, ELLIPSIS, 1)
    return lead


def _cut_inside(content: str, body: str) -> bool:
    """A region cut by truncation: it ends inside the answer, or before the answer began."""
    if not body.strip() or content[:8] not in body:
        return True
    at = body.find(content[:8])
    return content.startswith(body[at:])


def _diff(expected: str, got: str) -> str:
    """The two texts' ends, from a little before where they stop agreeing (compared from the end)."""
    i = 0
    while i < min(len(expected), len(got)) and expected[-1 - i] == got[-1 - i]:
        i += 1
    return f"expected …{expected[max(0, len(expected) - i - 30):]!r}, trained …{got[max(0, len(got) - i - 30):]!r}"
