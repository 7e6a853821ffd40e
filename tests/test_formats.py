"""Schema adapters: round trips (hypothesis), role and no-input spellings, detection, reject reasons."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.data import formats
from workbench.data.formats import FORMATS, RowError, detect, from_canonical, normalise_role, remap, to_canonical
from workbench.records import Message

# "</think>" in an assistant turn is an inline reasoning block, split off by design (test_inline_think_block_is_split_off_as_qwen3_splits_it)
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "" and "</think>" not in s)


def msg(role: str) -> st.SearchStrategy[Message]:
    return text.map(lambda c: Message(role, c))


any_turn = st.sampled_from(["user", "assistant", "tool"]).flatmap(msg)
chat = st.tuples(st.one_of(st.just(()), st.tuples(msg("system"))), st.lists(any_turn, min_size=1, max_size=6)).map(
    lambda p: (*p[0], *p[1])
)
pair = st.tuples(msg("user"), msg("assistant"))
SHAPES: dict[str, st.SearchStrategy[tuple[Message, ...]]] = {
    "messages": chat,
    "sharegpt": chat,
    "alpaca": st.one_of(pair, st.tuples(msg("system"), msg("user"), msg("assistant"))),
    "self_instruct": pair,
    "query_response": pair,
    "prompt_completion": st.one_of(
        pair, st.tuples(chat, msg("assistant")).map(lambda p: (*p[0], p[1]))
    ),
    "question_answer": pair,
    "text": st.tuples(msg("assistant")),
}


def test_every_format_has_a_shape() -> None:
    assert set(SHAPES) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(fmt: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(SHAPES[fmt])
    def check(messages: tuple[Message, ...]) -> None:
        row = json.loads(json.dumps(from_canonical(messages, fmt)))  # through JSON, as on disk
        assert detect([row]) == fmt
        assert tuple(to_canonical(row, fmt)) == messages

    check()


@pytest.mark.parametrize(
    ("label", "role"),
    [(" Human ", "user"), ("human", "user"), ("USER", "user"), ("prompter", "user"), ("GPT", "assistant"),
     ("gpt", "assistant"), ("chatgpt", "assistant"), ("bing", "assistant"), ("Assistant ", "assistant"),
     ("model", "assistant"), ("function_call", "assistant"), ("System", "system"), ("tool", "tool"),
     ("function", "tool"), ("observation", "tool"), ("ipython", "tool")],
)  # fmt: skip
def test_role_spellings(label: str, role: str) -> None:
    assert normalise_role(label) == role


def test_unknown_role_and_non_string_role() -> None:
    with pytest.raises(RowError) as e:
        normalise_role("narrator", "messages[0].role")
    assert (e.value.reason, e.value.field) == ("unknown_role", "messages[0].role")
    with pytest.raises(RowError) as e:
        normalise_role(3)
    assert e.value.reason == "wrong_type"


def test_self_instruct_seed_tasks() -> None:
    row = {"id": "seed_task_1", "name": "antonyms", "instruction": "Give the antonym.", "is_classification": False,
           "instances": [{"input": "hot", "output": "cold"}, {"input": "", "output": "down"}]}  # fmt: skip
    assert detect([row]) == "self_instruct"
    assert to_canonical(row, "self_instruct") == [
        Message("user", "Give the antonym.\n\nhot"), Message("assistant", "cold"),
        Message("user", "Give the antonym."), Message("assistant", "down"),
    ]  # fmt: skip
    for bad, reason, field in [
        ({"instances": []}, "empty_turn", "instances"),
        ({"instances": "x"}, "wrong_type", "instances"),
        ({"instances": [{"input": ""}]}, "missing_field", "instances[0].output"),
        ({"instances": [{"input": 3, "output": "y"}]}, "wrong_type", "instances[0].input"),
    ]:
        with pytest.raises(RowError) as e:
            to_canonical({"instruction": "Do it.", **bad}, "self_instruct")
        assert (e.value.reason, e.value.field) == (reason, field)


@pytest.mark.parametrize("marker", ["", "  ", "<noinput>", "<no input>", "No input", "No Input.", "N/A", "n/a", "none",
                                    "None", "Noinput", "null", None])  # fmt: skip
def test_alpaca_no_input_markers(marker: str | None) -> None:
    row = {"instruction": "Say hi.", "input": marker, "output": "Hi!"}
    assert to_canonical(row, "alpaca") == [Message("user", "Say hi."), Message("assistant", "Hi!")]


def test_alpaca_input_is_joined_and_system_kept() -> None:
    row = {"system": "Be brief.", "instruction": "Translate.", "input": "bonjour", "output": "hello"}
    assert to_canonical(row, "alpaca") == [
        Message("system", "Be brief."),
        Message("user", "Translate.\n\nbonjour"),
        Message("assistant", "hello"),
    ]


def test_sharegpt_top_level_system_and_blank_system() -> None:
    row = {"system": "S", "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
    assert [m.role for m in to_canonical(row, "sharegpt")] == ["system", "user", "assistant"]
    row["system"] = ""
    assert [m.role for m in to_canonical(row, "sharegpt")] == ["user", "assistant"]


def test_blank_system_turn_is_kept_but_blank_user_turn_is_rejected() -> None:
    row = {"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "x"}]}
    assert to_canonical(row, "messages")[0] == Message("system", "")
    row = {"messages": [{"role": "user", "content": " \n"}]}
    with pytest.raises(RowError) as e:
        to_canonical(row, "messages")
    assert (e.value.reason, e.value.field) == ("empty_turn", "messages[0].content")


def test_openai_text_content_parts_are_joined() -> None:
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert to_canonical(row, "messages") == [Message("user", "ab")]


@pytest.mark.parametrize(
    ("row", "fmt", "reason", "field"),
    [
        ({"instruction": "x"}, "alpaca", "missing_field", "output"),
        ({"instruction": "x", "output": None}, "alpaca", "missing_field", "output"),
        ({"instruction": "x", "output": 3}, "alpaca", "wrong_type", "output"),
        ({"instruction": "x", "input": 5, "output": "y"}, "alpaca", "wrong_type", "input"),
        ({"question": "", "answer": "y"}, "question_answer", "empty_turn", "question"),
        ({"messages": "hi"}, "messages", "wrong_type", "messages"),
        ({"messages": []}, "messages", "empty_turn", "messages"),
        ({"messages": ["hi"]}, "messages", "wrong_type", "messages[0]"),
        ({"conversations": [{"from": "human"}]}, "sharegpt", "missing_field", "conversations[0].value"),
        ({"conversations": [{"value": "x"}]}, "sharegpt", "missing_field", "conversations[0].role"),
        ({"prompt": "p"}, "prompt_completion", "missing_field", "completion"),
        ({"text": ["a"]}, "text", "wrong_type", "text"),
    ],
)
def test_reject_reasons(row: dict, fmt: str, reason: str, field: str) -> None:
    with pytest.raises(RowError) as e:
        to_canonical(row, fmt)
    assert (e.value.reason, e.value.field) == (reason, field)


def test_prompt_completion_conversational() -> None:
    row = {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
           "completion": [{"role": "assistant", "content": "a"}]}  # fmt: skip
    assert [m.role for m in to_canonical(row, "prompt_completion")] == ["system", "user", "assistant"]


def test_detect_prefers_the_richer_schema_and_votes() -> None:
    assert detect([{"messages": [], "text": "x"}]) == "messages"
    assert detect([{"instruction": "a", "output": "b", "text": "c"}]) == "alpaca"
    assert detect([{"x": 1}, {"query": "a", "response": "b"}, {"query": "a", "response": "b"}, {"text": "t"}]) == "query_response"
    assert detect([{"x": 1}]) is None
    assert detect([]) is None


def test_remap_renames_columns() -> None:
    assert remap({"q": "a", "keep": 1}, {"question": "q"}) == {"question": "a", "keep": 1}


def test_from_canonical_refuses_shapes_the_schema_cannot_hold() -> None:
    with pytest.raises(ValueError):
        from_canonical([Message("user", "a"), Message("user", "b")], "question_answer")
    with pytest.raises(ValueError):
        from_canonical([Message("user", "a")], "text")


def test_text_rows_are_one_assistant_turn_marked_in_meta() -> None:
    assert to_canonical({"text": "raw"}, "text") == [Message("assistant", "raw")]
    assert formats.SCHEMAS["text"].meta == {"format": "text"}


# --- assistant reasoning ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["reasoning_content", "thinking", "reasoning"])
def test_reasoning_fields_become_the_messages_reasoning(key: str) -> None:
    row = {"messages": [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5", key: "2 and 3 make 5"}]}
    assert to_canonical(row, "messages")[1] == Message("assistant", "5", "2 and 3 make 5")


def test_inline_think_block_is_split_off_as_qwen3_splits_it() -> None:
    turn = {"from": "gpt", "value": "<think>\n2 and 3 make 5\n</think>\n\nIt is 5."}
    got = to_canonical({"conversations": [{"from": "human", "value": "2+3?"}, turn]}, "sharegpt")[1]
    assert got == Message("assistant", "It is 5.", "2 and 3 make 5")
    # R1-style output: no opening <think> (the prompt held it)
    assert to_canonical({"question": "2+3?", "answer": "add them\n</think>\n5"}, "question_answer")[1] == Message("assistant", "5", "add them")
    # a reasoning field wins; the content is kept as written
    both = {"role": "assistant", "content": "<think>x</think>5", "reasoning_content": "y"}
    assert formats.parse_turns([{"role": "user", "content": "q"}, both], "messages")[1] == Message("assistant", "<think>x</think>5", "y")


def test_reasoning_rejects_name_the_field() -> None:
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "thinking": ["not", "text"]}]}
    with pytest.raises(RowError) as e:
        to_canonical(bad, "messages")
    assert (e.value.reason, e.value.field) == ("wrong_type", "messages[1].thinking")
    only = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>hmm</think>\n"}]}
    with pytest.raises(RowError) as e:
        to_canonical(only, "messages")
    assert e.value.reason == "empty_turn" and "no answer" in e.value.detail


plain = st.text(st.characters(blacklist_characters="<>\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip() != ""
)


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca", "query_response", "prompt_completion", "question_answer"])
def test_reasoning_round_trips_through_every_chat_schema(fmt: str) -> None:
    # schemas without a reasoning field carry it inline, so it survives a write and a read
    @settings(max_examples=40, deadline=None)
    @given(plain, plain, plain)
    def check(question: str, answer: str, reasoning: str) -> None:
        messages = (Message("user", question), Message("assistant", answer, reasoning))
        row = json.loads(json.dumps(from_canonical(messages, fmt)))
        assert tuple(to_canonical(row, fmt)) == messages

    check()
