"""The token view: trained tokens bright, untrained dim, special tokens marked, boundaries visible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static

from workbench.mask import IGNORE, MaskResult

# as in `workbench mask`: two backgrounds per kind alternate token by token so every boundary shows
TRAINED = ("bold #ffffff on #1f6f3f", "bold #ffffff on #2f8f4f")
UNTRAINED = ("#9a9a9a on #1c1c1c", "#9a9a9a on #303030")
SPECIAL_TRAINED = "bold #ffd75f on #1f6f3f"
SPECIAL_UNTRAINED = "bold #ff5fd7 on #1c1c1c"


@dataclass(frozen=True, slots=True)
class Piece:
    text: str  # what the token stands for, whitespace made visible
    token_id: int
    trained: bool
    special: bool


def special_ids(tokenizer: Any) -> set[int]:
    return set(tokenizer.all_special_ids) | {
        i for t, i in tokenizer.get_added_vocab().items() if t.startswith(("<", "[")) and t.endswith((">", "]"))
    }


def pieces(tokenizer: Any, result: MaskResult) -> list[Piece]:
    """One Piece per token of the render, with the labels the mask module gave it."""
    from workbench.console.mask import piece

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


def legend() -> Text:
    t = Text("legend: ", style="dim")
    t.append("trained", style=TRAINED[0])
    t.append(" ")
    t.append("untrained", style=UNTRAINED[0])
    t.append(" ")
    t.append("<special>", style=SPECIAL_UNTRAINED)
    t.append(" ")
    t.append("<special trained>", style=SPECIAL_TRAINED)
    t.append("   · space  ↵ newline  → tab; backgrounds alternate per token", style="dim")
    return t


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
