"""Assistant reasoning (chain of thought): the fields it arrives in, inline <think> blocks, and the markers templates write."""

from __future__ import annotations

from typing import Any

# The names a message's reasoning is passed under; transformers aliases them to each other when rendering.
FIELDS: tuple[str, ...] = ("reasoning_content", "thinking", "reasoning")

# Reasoning block markers of the families we know (Qwen3/DeepSeek/QwQ, Seed, Magistral, Command-A, Kimi).
OPEN: tuple[str, ...] = ("<think>", "<seed:think>", "[THINK]", "<|START_THINKING|>", "◁think▷")
CLOSE: tuple[str, ...] = ("</think>", "</seed:think>", "[/THINK]", "<|END_THINKING|>", "◁/think▷")


def split_inline(content: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a content holding an inline ``<think>…</think>`` block, split as Qwen3's
    template splits it: the answer is what follows the last ``</think>`` (newlines trimmed), the
    reasoning what precedes it after an opening ``<think>``; (None, content) when there is no ``</think>``."""
    if "</think>" not in content:
        return None, content
    head, _, tail = content.rpartition("</think>")
    reasoning = head.rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, tail.lstrip("\n")


def inline(reasoning: str, content: str) -> str:
    """The reasoning written back into the content the way reasoning models emit it."""
    return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content}"


def reasoning_of(message: dict[str, Any]) -> str | None:
    """A message dict's reasoning, from whichever field holds it (None when none does)."""
    for key in FIELDS:
        value = message.get(key)
        if isinstance(value, str):
            return value
    return None


def normalise(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message dict with its reasoning in ``reasoning_content`` and the answer alone in
    ``content`` (an inline ``<think>`` block is split off); other messages as they are."""
    if message.get("role") != "assistant":
        return message
    content = message.get("content")
    reasoning = reasoning_of(message)
    if reasoning is None and isinstance(content, str) and "</think>" in content:
        reasoning, content = split_inline(content)
    if reasoning is None:
        return message
    out = {k: v for k, v in message.items() if k not in FIELDS}
    out["content"] = content
    out["reasoning_content"] = reasoning
    return out


def opener_at_end(text: str) -> str | None:
    """The open reasoning marker ``text`` ends in (followed by whitespace only), when it is not closed after."""
    body = text.rstrip()
    for marker in OPEN:
        if body.endswith(marker):
            return text[len(body) - len(marker) :]
    return None
