"""The text of a conversation that dedup compares: the whole conversation, its prompt side or its response side."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.records import Conversation, Message

VIEWS = ("conversation", "prompt", "response")

_ALL_TURNS = frozenset({"user", "assistant", "tool"})
_VIEW_ROLES = {"prompt": frozenset({"user", "tool"}), "response": frozenset({"assistant"})}


def text_view(conv: Conversation, on: str) -> str:
    """The text of ``conv`` that ``--on`` compares."""
    return messages_view(conv.messages, on)


def messages_view(messages: Sequence[Message], on: str) -> str:
    """The text of a list of messages that ``--on`` compares (system turns never count)."""
    roles = _VIEW_ROLES.get(on, _ALL_TURNS)
    return "\n".join([m.content for m in messages if m.role in roles])
