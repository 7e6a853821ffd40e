"""Reasoning and template text in the trained regions: reasoning a template drops (and the tokens that costs), and
the text a template writes into a turn that the data does not hold."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.hits import Hits
from workbench.records import Finding
from workbench.template.reasoning import reasoning_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Msgs = list[dict[str, Any]]


class Reasoning:
    """Reasoning a template drops, gathered per row; its tokens are counted per batch (``settle``)."""

    def __init__(self) -> None:
        # (row id, message, is the last assistant turn, text; its token count once settled)
        self.dropped: list[tuple[str, int, bool, str | int]] = []
        self.rows: list[str] = []  # one entry per row that loses reasoning

    def settle(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Count the tokens of the texts gathered so far in one call; only the counts are kept."""
        todo = [i for i, d in enumerate(self.dropped) if isinstance(d[3], str)]
        if not todo:
            return
        from workbench.checks.parity import encode_many

        for i, ids in zip(todo, encode_many(tokenizer, [str(self.dropped[i][3]) for i in todo])):
            rid, k, is_last, _ = self.dropped[i]
            self.dropped[i] = (rid, k, is_last, len(ids))

    def merge(self, other: Reasoning) -> None:
        self.dropped.extend(other.dropped)
        self.rows.extend(other.rows)

    def check(self, msgs: Msgs, full: str, rid: str) -> None:
        turns = [k for k, m in enumerate(msgs) if m.get("role") == "assistant"]
        before = len(self.dropped)
        for k in turns:
            text = (reasoning_of(msgs[k]) or "").strip()
            if text and text not in full:
                self.dropped.append((rid, k, k == turns[-1], text))
        if len(self.dropped) > before:
            self.rows.append(rid)

    def findings(self, tokenizer: PreTrainedTokenizerBase, n: int) -> list[Finding]:
        if not self.dropped:
            return []
        self.settle(tokenizer)
        counts = [int(c) for *_, c in self.dropped]
        rids = self.rows
        last = [rid for rid, _, is_last, _ in self.dropped if is_last]
        tokens = sum(counts)
        examples = [
            {"id": rid, "message": k, "last_turn": is_last, "tokens": c}
            for (rid, k, is_last, _), c in list(zip(self.dropped, counts))[:20]
        ]
        if last:
            which = "of every assistant turn, the last included"
            hint = (
                "use a template that renders reasoning in training (for DeepSeek-R1 distills TRL's "
                "deepseek_r1_distill_training.jinja) with --template, or accept training the answers alone"
            )
        else:
            which = "of assistant turns before the last user message"
            hint = None
        message = (
            f"{rows_phrase(rids, n)}: the template drops the reasoning {which}: "
            f"{len(self.dropped)} turn(s), {tokens} reasoning tokens that are never trained"
        )
        data = {"turns": len(self.dropped), "tokens": tokens, "last_turns": len(last), "examples": examples}
        return [finding("reasoning_dropped", message, rids, data=data, hint=hint)]


def template_text(hits: Hits, written: list[tuple[str, str]], rid: str) -> None:
    """Note the template text a row's trained regions hold (``MaskResult.written``)."""
    if written:
        hits.ids["template_text_trained"].append(rid)
    for where in dict.fromkeys(w for w, _ in written):
        hits.add(f"template_text_trained:{where}", rid, texts=list(dict.fromkeys(t for w, t in written if w == where)))


_WHERE = {
    "before": "before the answer",
    "tags_before": "ahead of the generated text, inside the {% generation %} tags (the inference prompt holds it)",
    "tags_after": "after the end-of-turn token, inside the {% generation %} tags",
}


def template_text_findings(hits: Hits, n: int) -> list[Finding]:
    parts: list[str] = []
    data: dict[str, Any] = {}
    for where, phrase in _WHERE.items():
        ids = hits.ids.get(f"template_text_trained:{where}")
        if not ids:
            continue
        texts = Counter(t for e in hits.details[f"template_text_trained:{where}"] for t in e["texts"])
        shown = ", ".join(f"{t!r}" for t, _ in texts.most_common(3))
        parts.append(f"{shown} {phrase} ({len(ids)} row(s))")
        data[where] = dict(texts.most_common(5))
    rids = hits.ids.get("template_text_trained", [])
    if not parts:
        return []
    message = (
        f"{rows_phrase(rids, n)} train text the template writes, not the data: "
        + "; ".join(parts) + " (\"…\" stands for the turn's own reasoning)"
    )  # fmt: skip
    return [finding("template_text_trained", message, rids, data=data)]
