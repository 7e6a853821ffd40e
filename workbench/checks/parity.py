"""Train/inference parity per row: the inference prompt is a token prefix of the training render, and earlier
turns render the same once later turns follow (and, when they do not, what changes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.hits import Hits, divergence
from workbench.records import Finding
from workbench.template.chat import Renderer, TemplateError
from workbench.template.reasoning import CLOSE, OPEN, opener_at_end, reasoning_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Msgs = list[dict[str, Any]]
NPP = "not_prefix_preserving"

# What changes when an earlier turn is no longer the last, and what that means for training.
CAUSES: dict[str, tuple[str, str]] = {
    "reasoning": (
        "the template drops an assistant turn's reasoning block once a later turn follows",
        ("earlier turns are trained without that block, as the template renders history; split multi-turn rows "
         "into one row per assistant turn to train each turn as it was generated, reasoning included"),
    ),
    "end": (
        "the template ends the last message's turn differently from earlier turns",
        ("earlier turns are trained to end with the history marker, not the one generation ends with; split "
         "multi-turn rows into one row per assistant turn so every trained answer ends as generation does"),
    ),
    "system": (
        "the template moves the system prompt as the conversation grows",
        ("expect earlier turns to be trained without the system prompt where the template no longer puts it; keep "
         "the template's layout at inference, or use a template that places the system prompt first"),
    ),
    "other": (
        "the template renders an earlier turn differently once later turns follow",
        ("expect earlier assistant turns to be trained as the template renders history; split multi-turn rows into "
         "one row per assistant turn if each turn must be trained as it was generated"),
    ),
}  # fmt: skip


def render(renderer: Renderer, msgs: Msgs, gen: bool = False) -> str | None:
    try:
        return renderer.render(msgs, add_generation_prompt=gen)[0]
    except TemplateError:
        return None


# --- prefix preservation ----------------------------------------------------------------------


def check_prefix(renderer: Renderer, msgs: Msgs, full: str, rid: str, hits: Hits) -> None:
    """Each earlier assistant turn, rendered as the conversation's end, must be a prefix of the whole render."""
    turns = [k for k, m in enumerate(msgs) if m.get("role") == "assistant"]
    for k in turns[:-1]:
        text = render(renderer, msgs[: k + 1])
        if text is None or full.startswith(text):
            continue
        at = divergence(text, full)
        cause, what = classify(msgs, k, text, full, at)
        hits.add(
            f"{NPP}:{cause}", rid, message=k, what=what, at_char=at,
            turn_render=text[max(0, at - 30) : at + 60], full_render=full[max(0, at - 30) : at + 60],
        )  # fmt: skip
        return


def classify(msgs: Msgs, k: int, text: str, full: str, at: int) -> tuple[str, str]:
    """(cause, what changed in words) where ``text`` (turn ``k`` rendered last) leaves ``full`` at char ``at``."""
    at = _marker_start(text, at)
    rest = text[at:]
    # the piece the turn render holds before the two agree again
    resync = full[at : at + 16]
    j = text.find(resync, at) if resync else -1
    removed = text[at:j] if j > at else ""
    system = str(msgs[0].get("content") or "").strip() if msgs and msgs[0].get("role") == "system" else ""
    if system and system in rest and system not in full[at : at + len(rest)]:
        return "system", "the system prompt sits in a different turn once later turns follow"
    reasoning = (reasoning_of(msgs[k]) or "").strip()
    window = text[max(0, at - 12) : at + len(removed) + 12]
    if (reasoning and reasoning in text and reasoning not in full) or any(m in window for m in OPEN + CLOSE):
        if reasoning and reasoning in removed:
            return "reasoning", f"message {k}'s reasoning ({_short(removed)}) is dropped once a later turn follows"
        if removed and removed.strip() and not any(c.isalnum() for c in _strip_markers(removed)):
            return "reasoning", f"the empty reasoning block {removed!r} the template writes into the last turn is gone once a later turn follows"
        return "reasoning", f"message {k}'s reasoning block is dropped once a later turn follows ({_short(rest)} becomes {_short(full[at:])})"
    content = str(msgs[k].get("content") or "").strip()
    if len(rest) <= 40 and (not content or content not in rest):
        # the two part only after the answer: the turn closes (or the render ends) differently
        theirs = full[at : _marker_end(full, at + max(len(rest), 12))]
        return "end", f"after the answer the last message's turn has {rest!r}; once later turns follow it has {theirs!r}"
    return "other", f"as the last message the turn renders {_short(text[max(0, at - 20):at + 40])}; with later turns {_short(full[max(0, at - 20):at + 40])}"


def _marker_start(text: str, at: int) -> int:
    """``at`` moved back to the start of the <|…|> / [… ] marker it falls inside, so a change reads as whole tokens."""
    for opening, closing in (("<", ">"), ("[", "]")):
        j = text.rfind(opening, max(0, at - 24), at)
        if j >= 0 and closing not in text[j:at]:
            return j
    return at


def _marker_end(text: str, end: int) -> int:
    """``end`` moved on to the end of the <|…|> marker it falls inside."""
    j = text.rfind("<", max(0, end - 24), end)
    if j >= 0 and ">" not in text[j:end]:
        k = text.find(">", end, end + 24)
        return k + 1 if k >= 0 else end
    return end


def _strip_markers(text: str) -> str:
    for m in OPEN + CLOSE:
        text = text.replace(m, "")
    return text


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")


def prefix_findings(hits: Hits, n: int) -> list[Finding]:
    out: list[Finding] = []
    for cause, (meaning, hint) in CAUSES.items():
        rids = hits.ids.get(f"{NPP}:{cause}")
        if not rids:
            continue
        examples = hits.details[f"{NPP}:{cause}"]
        whats = sorted({e["what"] for e in examples})
        message = f"{rows_phrase(rids, n)}: {meaning}: {whats[0]}" + (f" (and {len(whats) - 1} other form(s))" if len(whats) > 1 else "")
        out.append(finding(NPP, message, rids, data={"cause": cause, "examples": examples}, hint=hint))
    return out


# --- inference prompt parity -------------------------------------------------------------------


def encode_many(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Ids only; the Rust backend's fast path skips the offsets and masks the full call computes."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)
    if fast is not None:
        return [e.ids for e in fast(texts, add_special_tokens=False)]
    return list(tokenizer(texts, add_special_tokens=False)["input_ids"])


def check_parity(
    tokenizer: PreTrainedTokenizerBase, batch: Sequence[tuple[str, str, str, list[int], list[int] | None]], hits: Hits
) -> None:
    """The inference prompt (add_generation_prompt=True) must tokenize to a prefix of the training render. A
    prompt that only adds an open reasoning block (``<think>\\n``) the training render lacks or closes empty
    is its own finding: the cause is the data's missing reasoning, not the template's layout. Each item:
    (row id, prompt, training render, its ids (perhaps cut at max_length), the prompt's ids when known)."""
    if not batch:
        return
    todo = [k for k, item in enumerate(batch) if item[4] is None]
    encoded = iter(encode_many(tokenizer, [batch[k][1] for k in todo]) if todo else [])
    for rid, prompt, full, ids, known in batch:
        p = known if known is not None else next(encoded)
        if list(ids[: len(p)]) == list(p[: len(ids)]):  # a render cut at max_length is compared as far as it goes
            continue
        opener = opener_at_end(prompt)
        if opener:
            base = prompt[: len(prompt) - len(opener)]
            b = encode_many(tokenizer, [base])[0]
            if full.startswith(base) and list(ids[: len(b)]) == list(b):
                after = full[len(base) : len(base) + 40]
                hits.add("generation_prompt_opens_reasoning", rid, opener=opener, training=after,
                         empty=_closes_empty(after, opener))  # fmt: skip
                continue
        if full.startswith(prompt):
            k = divergence(list(p), list(ids))
            hits.add(
                "generation_prompt_mismatch", rid, kind="token boundary", at_token=k,
                inference=tokenizer.convert_ids_to_tokens(list(p[k : k + 4])),
                training=tokenizer.convert_ids_to_tokens(list(ids[k : k + 4])),
            )  # fmt: skip
        else:
            at = divergence(prompt, full)
            hits.add("generation_prompt_mismatch", rid, kind="text", at_char=at,
                     inference=prompt[max(0, at - 30) : at + 60], training=full[max(0, at - 30) : at + 60])  # fmt: skip


def _closes_empty(after: str, opener: str) -> bool:
    """Does the training render write the prompt's reasoning block closed at once (``<think>\\n\\n</think>``)?"""
    rest = after[len(opener.rstrip()) :] if after.startswith(opener.rstrip()) else ""
    return any(rest.lstrip().startswith(c) for c in CLOSE)


def parity_findings(hits: Hits, n: int) -> list[Finding]:
    out: list[Finding] = []
    rids = hits.ids.get("generation_prompt_mismatch")
    if rids:
        out.append(finding("generation_prompt_mismatch", f"{rows_phrase(rids, n)}: the inference prompt (add_generation_prompt=True) "
                           "is not a token prefix of the training render", rids, data={"examples": hits.details["generation_prompt_mismatch"]}))  # fmt: skip
    rids = hits.ids.get("generation_prompt_opens_reasoning")
    if rids:
        examples = hits.details["generation_prompt_opens_reasoning"]
        opener = examples[0]["opener"]
        empty = sum(1 for e in examples if e["empty"])
        how = "closes it empty" if empty * 2 >= len(examples) else "has no reasoning block"
        out.append(finding(
            "generation_prompt_opens_reasoning",
            f"{rows_phrase(rids, n)}: the generation prompt ends by opening a reasoning block ({opener!r}) but the "
            f"training render {how} (e.g. {examples[0]['training']!r}): at inference the model is prompted to reason, "
            "in training it answers without reasoning",
            rids, data={"opener": opener, "examples": examples},
        ))  # fmt: skip
    return out
