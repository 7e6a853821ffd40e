"""Records: stable ids, canonical rows, severity ordering."""

from __future__ import annotations

from workbench.records import Conversation, Message, Rendered, Source, conversation_id, severity_at_least


def _conv(*pairs: tuple[str, str], src: Source | None = None) -> Conversation:
    return Conversation.make([Message(r, c) for r, c in pairs], src or Source("a.jsonl", line=1))


def test_id_is_content_hash_independent_of_source_and_meta() -> None:
    a = _conv(("user", "hi"), ("assistant", "hello"), src=Source("a.jsonl", line=1))
    b = Conversation.make(list(a.messages), Source("b.parquet", row=7), {"x": 1})
    assert a.id == b.id
    assert len(a.id) == 16


def test_id_changes_with_role_or_content_and_is_not_ambiguous() -> None:
    base = conversation_id([Message("user", "hi"), Message("assistant", "yo")])
    assert conversation_id([Message("user", "hi"), Message("assistant", "yo!")]) != base
    assert conversation_id([Message("system", "hi"), Message("assistant", "yo")]) != base
    # the boundary between turns is part of the hash: moving text across it changes the id
    assert conversation_id([Message("user", "hiy"), Message("assistant", "o")]) != base


def test_to_dict_is_trl_messages_row() -> None:
    c = _conv(("system", "s"), ("user", "u"), ("assistant", "a"))
    row = c.to_dict()
    assert row["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    assert row["source"] == "a.jsonl:1"
    assert c.prompt_text() == "s\nu" and c.response_text() == "a"


def test_source_str_and_rendered_counts() -> None:
    assert str(Source("x.parquet", row=3)) == "x.parquet[3]"
    r = Rendered([1, 2, 3, 4], [-100, -100, 3, 4], [(2, 4)], "t")
    assert r.trained_count == 2


def test_severity_order() -> None:
    assert severity_at_least("error", "warning")
    assert severity_at_least("warning", "warning")
    assert not severity_at_least("info", "warning")


def test_reasoning_is_part_of_the_id_and_the_trl_row_only_when_present() -> None:
    plain = [Message("user", "hi"), Message("assistant", "yo")]
    assert conversation_id(plain) == conversation_id([Message("user", "hi"), Message("assistant", "yo", None)])
    thought = [Message("user", "hi"), Message("assistant", "yo", "greet back")]
    assert conversation_id(thought) != conversation_id(plain)
    # the reasoning is not ambiguous with the content: moving text across the boundary changes the id
    assert conversation_id([Message("user", "hi"), Message("assistant", "yog", "reet back")]) != conversation_id(thought)
    assert thought[1].to_dict() == {"role": "assistant", "content": "yo", "reasoning_content": "greet back"}
    assert plain[1].to_dict() == {"role": "assistant", "content": "yo"}
