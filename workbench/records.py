"""The records every stage passes along: messages, conversations, renders, findings and rejects."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")  # ascending


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. ``role`` is already normalised to system | user | assistant | tool.

    ``reasoning``: an assistant turn's reasoning (chain of thought), kept apart from the answer in
    ``content``; None when the turn has none. It reaches chat templates as ``reasoning_content``.
    """

    role: str
    content: str
    reasoning: str | None = None

    def to_dict(self) -> dict[str, str]:
        d = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            d["reasoning_content"] = self.reasoning  # the field Qwen3 / DeepSeek templates (and TRL) read
        return d


@dataclass(frozen=True, slots=True)
class Source:
    """Where a row came from: a file (or dataset name) and a 1-based line, or a 0-based row index."""

    file: str
    line: int | None = None
    row: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.row is not None:
            return f"{self.file}[{self.row}]"
        return self.file


def conversation_id(messages: tuple[Message, ...] | list[Message]) -> str:
    """A stable content hash of the messages: the same example has the same id in every run."""
    # one update over the joined bytes: the same digest as feeding each piece, at less per-call cost
    data = b"".join(
        m.role.encode() + b"\x1f" + m.content.encode("utf-8", "surrogatepass")
        # reasoning only when present, so rows without it keep the ids they always had
        + (b"\x1d" + m.reasoning.encode("utf-8", "surrogatepass") if m.reasoning is not None else b"")
        + b"\x1e"
        for m in messages
    )
    h = hashlib.blake2b(data, digest_size=8)
    return h.hexdigest()


@dataclass(slots=True)
class Conversation:
    """One training example: its messages, where it came from, and free-form metadata."""

    id: str
    messages: tuple[Message, ...]
    source: Source
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(
        cls,
        messages: list[Message] | tuple[Message, ...],
        source: Source,
        meta: dict[str, Any] | None = None,
    ) -> Conversation:
        msgs = tuple(messages)
        return cls(conversation_id(msgs), msgs, source, dict(meta or {}))

    def to_dict(self) -> dict[str, Any]:
        """The canonical messages row (what TRL's SFTTrainer reads), plus id, source and meta."""
        row: dict[str, Any] = {
            "messages": [m.to_dict() for m in self.messages],
            "id": self.id,
            "source": str(self.source),
        }
        if self.meta:
            row["meta"] = self.meta
        return row

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def prompt_text(self) -> str:
        """Everything that is not an assistant turn, joined by newlines."""
        return "\n".join(m.content for m in self.messages if m.role != "assistant")

    def response_text(self) -> str:
        """The assistant turns, joined by newlines."""
        return "\n".join(m.content for m in self.messages if m.role == "assistant")

    def text(self) -> str:
        return "\n".join(m.content for m in self.messages)


@dataclass(slots=True)
class Rendered:
    """A conversation rendered by a chat template and tokenised; labels are -100 where untrained."""

    input_ids: list[int]
    labels: list[int]
    assistant_spans: list[tuple[int, int]]  # token [start, end) of each trained assistant region
    text: str

    @property
    def trained_count(self) -> int:
        return len(self.labels) - self.labels.count(-100)


@dataclass(slots=True)
class Finding:
    """A problem (or a notable fact) a check found. Checks return these; they never print."""

    code: str
    severity: str  # one of SEVERITIES
    message: str
    example_ids: list[str] = field(default_factory=list)
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "example_ids": list(self.example_ids),
            "hint": self.hint,
        }
        if self.data:
            d["data"] = self.data
        return d


@dataclass(slots=True)
class Reject:
    """A row that could not become a Conversation: where, which field, and why."""

    file: str
    line: int | None
    reason: str  # a short code such as "malformed_json", "missing_field", "empty_turn"
    detail: str
    field: str | None = None
    row: int | None = None
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "row": self.row,
            "field": self.field,
            "reason": self.reason,
            "detail": self.detail,
            "raw": self.raw,
        }

    def where(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.row is not None:
            return f"{self.file}[{self.row}]"
        return self.file


def severity_at_least(severity: str, level: str) -> bool:
    """True when ``severity`` is ``level`` or worse."""
    return SEVERITIES.index(severity) >= SEVERITIES.index(level)
