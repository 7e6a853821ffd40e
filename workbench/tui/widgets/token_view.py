"""The token view: trained tokens bright, untrained dim, special tokens marked, boundaries visible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static

# the same colours, legend and special-token rule as `workbench mask`
from workbench.console.mask import (  # noqa: E402
    SPECIAL_TRAINED,
    SPECIAL_UNTRAINED,
    TRAINED,
    UNTRAINED,
    piece,
    special_ids,
)
from workbench.template import IGNORE, MaskResult


@dataclass(frozen=True, slots=True)
class Piece:
    text: str  # what the token stands for, whitespace made visible
    token_id: int
    trained: bool
    special: bool


def pieces(tokenizer: Any, result: MaskResult) -> list[Piece]:
    """One Piece per token of the render, with the labels the mask module gave it."""
    r = result.rendered
    if r is None:
        return []
    special = special_ids(tokenizer)
    return [
        Piece(piece(tokenizer, tid, special), tid, label != IGNORE, tid in special)
        for tid, label in zip(r.input_ids, r.labels, strict=True)
    ]


def to_text(items: list[Piece]) -> Text:
    text = Text()
    for pos, p in enumerate(items):
        if p.special:
            style = SPECIAL_TRAINED if p.trained else SPECIAL_UNTRAINED
        else:
            style = (TRAINED if p.trained else UNTRAINED)[pos % 2]
        text.append(p.text, style=style)
        if p.text.endswith("↵"):
            text.append("\n")
    return text


class TokenView(Static):
    """Shows ``pieces``; tests read them back to check exactly the masked tokens are highlighted."""

    DEFAULT_CSS = "TokenView { width: 1fr; height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.pieces: list[Piece] = []

    def show(self, items: list[Piece]) -> None:
        self.pieces = items
        self.update(to_text(items) if items else Text("(nothing rendered)", style="dim"))

    @property
    def trained_positions(self) -> list[int]:
        return [i for i, p in enumerate(self.pieces) if p.trained]
