"""Where each assistant turn sits in a render, found without the template's help: render the conversation up
to the turn with the generation prompt and locate that prompt in the full render (render-and-diff)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from workbench.template.chat import Renderer, TemplateError
from workbench.template.offsets import Offsets, tokens_overlapping
from workbench.template.reasoning import opener_at_end, split_inline


@dataclass(slots=True)
class Turn:
    """One assistant turn in the full render, in characters."""

    message: int  # index of the assistant message
    start: int  # the first character the model generates (the generation prompt's end, or the reasoning opener it holds)
    content_at: int  # where the content starts (== start when it has none or it was not found)
    content_end: int  # just after the content (== start when it has none or it was not found)
    lo: int  # end of the previous message's text: template text from here on belongs to this turn
    bound: int  # where the next message's content begins: the end-of-turn token must come before


def locate(
    renderer: Renderer, msgs: list[dict[str, Any]], full: str, notes: list[str], prompts: dict[int, str | None] | None = None
) -> list[Turn]:
    """Each assistant turn of ``msgs`` (already ``renderer.prepare``d) in ``full``, in order; ``prompts`` gets, per
    assistant message ``k`` > 0, the inference prompt rendered for it (None when the template raised).

    A turn starts where the generation prompt of the conversation up to it ends. When that prompt is
    not a prefix of the full render (the template renders history turns differently, or its prompt
    holds text history turns lack: Qwen3-2507's and QwQ's ``<think>\\n``, DeepSeek-R1's
    ``<｜Assistant｜><think>\\n``), the turn starts after the longest opening of the prompt found between
    the previous message and the content. A generation prompt that opens a reasoning block (``<think>``)
    counts the block as the turn's: the model writes its reasoning, and TRL's training templates train it.
    """
    turns: list[Turn] = []
    cursor = 0
    for k, m in enumerate(msgs):
        role = m.get("role")
        content = str(m.get("content") or "")
        if role != "assistant":
            # user and tool text stays where it was written; a system prompt may move (Mistral-Nemo), so it never advances
            if role in ("user", "tool") and content.strip():
                at = full.find(content.strip(), cursor)
                if at >= 0:
                    cursor = at + len(content.strip())
            continue
        lo = cursor
        prompt = _render(renderer, msgs[:k], True) if k else None
        if k and prompts is not None:
            prompts[k] = prompt
        if prompt is not None and len(prompt) >= lo and full.startswith(prompt):
            start = len(prompt)
        else:
            start = _search_start(renderer, msgs, k, full, lo, content)
            notes.append(
                f"message {k}: the generation prompt is not where this turn starts in the render; "
                + ("turn located by the prompt's opening text" if start >= 0 else "turn not located")
            )
            if start < 0:
                continue
        opener = opener_at_end(full[lo:start])
        if opener:
            start -= len(opener)  # the reasoning block the prompt opens is the turn's
        content_at = content_end = start
        if content:
            at, found = find_content(full, content, start)
            if at < 0:
                notes.append(f"message {k}: its content does not appear in the render (the template rewrites it)")
            else:
                content_at, content_end = at, at + len(found)
        turns.append(Turn(k, start, content_at, content_end, lo, _next_content(full, msgs, k, content_end)))
        cursor = content_end
    return turns


def _render(renderer: Renderer, msgs: list[dict[str, Any]], gen: bool) -> str | None:
    try:
        return renderer.render(msgs, add_generation_prompt=gen)[0]
    except TemplateError:
        return None


def find_content(full: str, content: str, start: int) -> tuple[int, str]:
    """(where, the text found) of ``content`` in ``full`` from ``start``: stripped when the template trims it,
    and only the answer when the template drops an inline reasoning block from it (QwQ's history turns)."""
    candidates = [content, content.strip()]
    if "</think>" in content:
        candidates.append(split_inline(content)[1].strip())
    for text in candidates:
        if text:
            at = full.find(text, start)
            if at >= 0:
                return at, text
    return -1, content


def _search_start(renderer: Renderer, msgs: list[dict[str, Any]], k: int, full: str, lo: int, content: str) -> int:
    """Where turn ``k`` starts when its generation prompt is not a prefix of the render: just after the longest
    opening of that prompt found between the previous message and the content (nearest the content)."""
    prompt = ""
    if k:
        with_prompt, without = _render(renderer, msgs[:k], True), _render(renderer, msgs[:k], False)
        if with_prompt is not None and without is not None and with_prompt.startswith(without):
            prompt = with_prompt[len(without) :]
    at_content, _ = find_content(full, content, lo) if content else (-1, "")
    end = at_content if at_content >= 0 else len(full)
    for j in range(len(prompt), 0, -1):
        piece = prompt[:j]
        if not piece.strip():
            break
        # nearest the content when it was found; else the first after the previous message (never a later turn's)
        at = full.rfind(piece, lo, end) if at_content >= 0 else full.find(piece, lo)
        if at >= 0:
            return at + j
    # No generation prompt (Mistral's [INST] layout): the turn starts where its content does.
    return at_content


def _next_content(full: str, msgs: list[dict[str, Any]], k: int, after: int) -> int:
    for m in msgs[k + 1 :]:
        content = str(m.get("content") or "").strip()
        if content:
            at = full.find(content, after)
            if at >= 0:
                return at
    return len(full)


def diff_spans(
    turns: list[Turn], ids: list[int], off: Offsets, eot: Collection[int], train_eot: bool, problems: list[str]
) -> list[tuple[int, int]]:
    """Token [start, end) per turn: from its first generated character through the first end-of-turn token
    after the content (before the next message begins); the end-of-turn excluded when not ``train_eot``."""
    spans: list[tuple[int, int]] = []
    lo = 0
    starts = off.starts
    for t in turns:
        if t.content_end > t.start:
            a, b = tokens_overlapping(off, t.start, t.content_end, lo)
        else:  # no content located: the turn is what the template writes up to its end-of-turn token
            a = b = bisect_left(starts, t.start, lo)
        e = b
        while e < len(ids) and starts[e] < t.bound and ids[e] not in eot:
            e += 1
        if e < len(ids) and starts[e] < t.bound and ids[e] in eot:
            end = e + 1 if train_eot else e
        else:
            problems.append(f"message {t.message}: no end-of-turn token follows the assistant content")
            end = b
        spans.append((a, end))
        lo = end
    return spans
