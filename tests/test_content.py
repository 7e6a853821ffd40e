"""Content lint: each finding fires on what it names, stays quiet on look-alikes, groups by code."""

from __future__ import annotations

import pytest

from workbench.data.content import RULES, Linter, lint
from workbench.records import Conversation, Message, Source


def conv(answer: str, prompt: str = "Question?") -> Conversation:
    return Conversation.make([Message("user", prompt), Message("assistant", answer)], Source("t.jsonl", 1))


FIRES = [
    ("replacement_char", "The caf\ufffd is open."),
    ("mojibake", "CafÃ© au lait"),
    ("mojibake", "It\u00e2\u20ac\u2122s fine"),
    ("mojibake", "a\u00c2\u00a0b"),
    ("control_chars", "bell\x07here"),
    ("control_chars", "nul\x00"),
    ("html_tag", "Line one<br>line two"),
    ("html_tag", "<p class='x'>Hello</p>"),
    ("html_entity", "Tom &amp; Jerry"),
    ("html_entity", "It&#39;s"),
    ("placeholder", "Dear {{name}}, thanks."),
    ("placeholder", "Hello {customer_name}!"),
    ("placeholder", "Sincerely, <YOUR NAME>"),
    ("placeholder", "Best regards, [Your Name]"),
    ("placeholder", "[INSERT COMPANY HERE] is great."),
]

QUIET = [
    "S\u00e3o Paulo, S\u00c3O PAULO, na\u00efve caf\u00e9 \u2019quoted\u2019",
    "Tabs\tand\nnewlines\r\nare fine.",
    "We know $\\frac{a}{b}$ and $x^{n}$ and \\boxed{42}.",
    "Use `f\"{name}\"` or\n```python\nprint(f'{name}')\nx = {'a': 1}\n```\n",
    "Generic List<T> and Map<K, V> in Java; AT&T; 3 < 4 > 2.",
    "Special tokens like <|im_start|> are not placeholders.",
    "An HTML example: `<div>` goes in code.",
    "A list [1, 2, 3] and [see above].",
    "GSM8K style <<16-3-4=9>>9 eggs.",
]


@pytest.mark.parametrize(("code", "answer"), FIRES)
def test_finding_fires(code: str, answer: str) -> None:
    c = conv(answer)
    findings = {f.code: f for f in lint([c])}
    assert code in findings, findings
    f = findings[code]
    assert f.example_ids == [c.id] and f.hint and f.severity == RULES[code].severity
    assert f.data["count"] == 1 and f.data["examples"][0]["source"] == "t.jsonl:1"


@pytest.mark.parametrize("answer", QUIET)
def test_clean_text_has_no_findings(answer: str) -> None:
    assert lint([conv(answer)]) == []


def test_empty_echoed_and_missing_answers() -> None:
    empty = conv("  ")
    echo = conv("Same words.", prompt="Same words.")
    none = Conversation.make([Message("user", "Hi")], Source("t.jsonl", 3))
    text_only = Conversation.make([Message("assistant", "raw text")], Source("t.jsonl", 4), {"format": "text"})
    codes = {f.code: f.example_ids for f in lint([empty, echo, none, text_only, conv("fine")])}
    assert codes == {"empty_answer": [empty.id], "answer_equals_prompt": [echo.id], "no_answer": [none.id]}


def test_findings_group_by_code_with_a_few_examples() -> None:
    convs = [conv(f"Caf\ufffd number {i}") for i in range(12)]
    (f,) = lint(convs)
    assert f.code == "replacement_char" and f.data["count"] == 12
    assert len(f.example_ids) == 5 and f.example_ids == [c.id for c in convs[:5]]
    assert f.message.startswith("12 of 12 conversations")


def test_streaming_linter_matches_lint() -> None:
    convs = [conv(a) for _, a in FIRES]
    linter = Linter()
    for c in convs:
        linter.add(c)
    assert [f.to_dict() for f in linter.findings()] == [f.to_dict() for f in lint(convs)]
