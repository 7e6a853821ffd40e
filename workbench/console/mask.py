"""Rich token view for `workbench mask`: trained tokens bright, untrained dim, specials marked, boundaries and whitespace visible."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from workbench.template import IGNORE, MaskResult
from workbench.printable import visible
from workbench.records import Conversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Two backgrounds per kind alternate token by token, so every boundary shows without extra glyphs.
TRAINED = ("bold bright_white on dark_green", "bold bright_white on green4")
UNTRAINED = ("grey62 on grey11", "grey62 on grey19")
SPECIAL_TRAINED = "bold yellow on dark_green"
SPECIAL_UNTRAINED = "bold magenta on grey11"
WHITESPACE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def piece(tokenizer: PreTrainedTokenizerBase, token_id: int, special: set[int]) -> str:
    """What one token stands for, whitespace made visible; byte fragments fall back to the raw token."""
    if token_id in special:
        return str(tokenizer.convert_ids_to_tokens(token_id))
    text = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if "\ufffd" in text or text == "":
        text = str(tokenizer.convert_ids_to_tokens(token_id))
    return visible("".join(WHITESPACE.get(ch, ch) for ch in text))  # an ESC in a token shows as \x1b


def special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids shown as special: the tokenizer's own, and added tokens that look like markers (<...>, [...])."""
    return set(tokenizer.all_special_ids) | {
        i for t, i in tokenizer.get_added_vocab().items() if t.startswith(("<", "[")) and t.endswith((">", "]"))
    }


def token_view(tokenizer: PreTrainedTokenizerBase, result: MaskResult) -> Text:
    """The rendered example as coloured tokens; a newline token also breaks the line."""
    text = Text()
    r = result.rendered
    if r is None:
        return text
    special = special_ids(tokenizer)
    for pos, (tid, label) in enumerate(zip(r.input_ids, r.labels)):
        trained = label != IGNORE
        shown = piece(tokenizer, tid, special)
        if tid in special:
            style = SPECIAL_TRAINED if trained else SPECIAL_UNTRAINED
        else:
            style = (TRAINED if trained else UNTRAINED)[pos % 2]
        text.append(shown, style=style)
        if shown.endswith("↵"):
            text.append("\n")
    return text


def header(conv: Conversation | None, result: MaskResult) -> Text:
    head = Text()
    head.append(f"#{result.index}", style="bold")
    if result.id:
        head.append(f"  id {result.id}", style="cyan")
    if conv is not None:
        head.append(visible(f"  {conv.source}", newlines=False), style="dim")
    if result.rendered is not None:
        r = result.rendered
        head.append(f"  {r.trained_count}/{len(r.input_ids)} tokens trained", style="bold")
        head.append(f"  via {result.derivation.replace('_', ' ')}")
        if result.agree is True:
            head.append("  (tags and render-diff agree)", style="green")
        elif result.agree is False:
            head.append("  (tags and render-diff DISAGREE)", style="bold red")
        if result.length > len(r.input_ids):
            head.append(f"  truncated from {result.length}", style="yellow")
    return head


def render_result(console: Console, tokenizer: PreTrainedTokenizerBase, conv: Conversation | None, result: MaskResult) -> None:
    console.print(header(conv, result), highlight=False)
    if result.error:
        console.print(Text(visible(f"  error: {result.error}"), style="bold red"), highlight=False)
        return
    console.print(token_view(tokenizer, result), highlight=False, soft_wrap=True)
    r = result.rendered
    if r is not None:
        for n, (a, b) in enumerate(r.assistant_spans, 1):
            trained = tokenizer.decode(r.input_ids[a:b], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            console.print(Text(f"  trained {n}: tokens {a}:{b} ", style="dim") + Text(repr(trained)), highlight=False)
    if result.disagreement:
        console.print(Text(visible(f"  {result.disagreement}"), style="bold red"), highlight=False)
    for p in result.problems:
        console.print(Text(visible(f"  problem: {p}"), style="red"), highlight=False)
    for note in result.notes:
        console.print(Text(visible(f"  note: {note}"), style="cyan"), highlight=False)
    for where, text in dict.fromkeys(result.written):
        what = "before an answer" if where == "before" else "by the generation tags, " + where.removeprefix("tags_") + " the turn"
        console.print(Text(f"  template text trained {what}: {text!r}", style="cyan"), highlight=False)
    if result.ok:
        console.print(Text("  verified: each trained region is one assistant turn, its answer closed by its end-of-turn token", style="green"), highlight=False)


def legend() -> Text:
    t = Text("legend: ", style="dim")
    t.append("trained", style=TRAINED[0])
    t.append(" ")
    t.append("untrained", style=UNTRAINED[0])
    t.append(" ")
    t.append("<special>", style=SPECIAL_UNTRAINED)
    t.append(" ")
    t.append("<special trained>", style=SPECIAL_TRAINED)
    t.append("  · space  ↵ newline  → tab; backgrounds alternate per token", style="dim")
    return t


def render_all(
    console: Console, tokenizer: PreTrainedTokenizerBase, items: list[tuple[int, Conversation, MaskResult]]
) -> None:
    for n, (_, conv, res) in enumerate(items):
        if n:
            console.print()
        render_result(console, tokenizer, conv, res)
    console.print(legend(), highlight=False)
