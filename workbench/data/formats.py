"""Schema adapters: OpenAI messages, ShareGPT, Alpaca, Self-Instruct, query/response, prompt/completion, question/answer, text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.records import Message
from workbench.template.reasoning import FIELDS as REASONING_FIELDS
from workbench.template.reasoning import inline, split_inline

# Every spelling of a speaker we have met in public datasets, after strip() and lower().
ROLE_ALIASES: dict[str, str] = {
    "system": "system", "sys": "system", "system_prompt": "system", "developer": "system",
    "user": "user", "human": "user", "prompter": "user", "customer": "user", "question": "user",
    "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant", "bing": "assistant",
    "bard": "assistant", "model": "assistant", "bot": "assistant", "ai": "assistant",
    "claude": "assistant", "gpt-4": "assistant", "gpt4": "assistant", "answer": "assistant",
    "function_call": "assistant",  # LLaMA-Factory: the assistant calling a tool
    "tool": "tool", "function": "tool", "observation": "tool", "ipython": "tool",
    "tool_response": "tool", "function_response": "tool",
}  # fmt: skip

# Alpaca "input" values that mean "there is no input" (compared after _squash()).
NO_INPUT: frozenset[str] = frozenset(
    {"", "noinput", "noinputs", "na", "none", "nan", "null", "nil", "empty", "noinputprovided",
     "noinputrequired", "notapplicable", "noinputneeded"}
)  # fmt: skip


class RowError(Exception):
    """A row that cannot become messages: a reject reason code, the offending field, and a detail."""

    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def normalise_role(role: Any, field: str = "role") -> str:
    """Map a speaker label (" Human ", "GPT", "observation", ...) to system | user | assistant | tool."""
    if not isinstance(role, str):
        raise RowError("wrong_type", field, f"role must be a string, got {type(role).__name__}")
    found = ROLE_ALIASES.get(role)
    if found is None:
        found = ROLE_ALIASES.get(role.strip().lower())
        if found is None:
            raise RowError("unknown_role", field, f"unknown role {role!r}")
    return found


def _squash(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def is_no_input(value: Any) -> bool:
    """True for the many ways Alpaca-style data says "no input": "", "<noinput>", "N/A", "None", null..."""
    return value is None or (isinstance(value, str) and (not value.strip() or _squash(value) in NO_INPUT))


def _text(row: Mapping[str, Any], key: str, *, role: str | None = None, field: str | None = None) -> str:
    """A required string field; a blank one is an empty turn when it is a turn's content."""
    if key not in row:
        raise RowError("missing_field", field or key, f"no {key!r} field")
    value = row[key]
    if value is None:
        raise RowError("missing_field", field or key, f"{key!r} is null")
    if not isinstance(value, str):
        raise RowError("wrong_type", field or key, f"{key!r} must be a string, got {type(value).__name__}")
    if role != "system" and not value.strip():
        raise RowError("empty_turn", field or key, f"{key!r} is blank")
    return value


def _optional_system(row: Mapping[str, Any]) -> list[Message]:
    value = row.get("system")
    if value is None or (isinstance(value, str) and not value.strip()):
        return []  # a blank top-level system field means "no system prompt" in these formats
    if not isinstance(value, str):
        raise RowError("wrong_type", "system", f"'system' must be a string, got {type(value).__name__}")
    return [Message("system", value)]


def _content(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        # OpenAI content parts: [{"type": "text", "text": "..."}]; text-only parts join losslessly
        return "".join(_text(p, "text", field=field) for p in value)
    if value is None:
        raise RowError("missing_field", field, "content is null")
    raise RowError("wrong_type", field, f"content must be a string, got {type(value).__name__}")


def parse_turns(value: Any, field: str) -> list[Message]:
    """A list of turns as {role, content} or {from, value} dicts (either spelling, per turn)."""
    if type(value) is not list or not value:
        _bad_turn_list(value, field)
    out: list[Message] = []
    roles = ROLE_ALIASES
    for i, turn in enumerate(value):
        # hot path: a dict with a known role spelled exactly and non-blank string content
        if type(turn) is dict:
            role = turn.get("role")
            content = turn.get("content") if role is not None else turn.get("value")
            if role is None:
                role = turn.get("from")
            if type(role) is str and type(content) is str and content and not content.isspace():
                r = roles.get(role)
                # assistant turns that may carry reasoning take the checked path
                if r is not None and (r != "assistant" or ("</think>" not in content and not _has_reasoning_field(turn))):
                    out.append(Message(r, content))
                    continue
        out.append(_turn(turn, i, field))
    return out


def _has_reasoning_field(turn: dict[str, Any]) -> bool:
    return "reasoning_content" in turn or "thinking" in turn or "reasoning" in turn


def assistant_message(content: str, reasoning: Any, field: str, reasoning_field: str | None = None) -> Message:
    """An assistant turn with its reasoning apart: from a reasoning field (``reasoning_content``, ``thinking``,
    ``reasoning``) or, when there is none, from an inline ``<think>…</think>`` block at the head of the content."""
    if reasoning is not None and not isinstance(reasoning, str):
        raise RowError("wrong_type", reasoning_field or field, f"reasoning must be a string, got {type(reasoning).__name__}")
    if reasoning is None and "</think>" in content:
        reasoning, content = split_inline(content)
        if not content.strip():
            raise RowError("empty_turn", field, "the assistant turn holds reasoning (<think>…</think>) but no answer after it")
    return Message("assistant", content, reasoning)


def _bad_turn_list(value: Any, field: str) -> None:
    if value is None:
        raise RowError("missing_field", field, f"{field!r} is null")
    if not isinstance(value, list):
        raise RowError("wrong_type", field, f"{field!r} must be a list of turns, got {type(value).__name__}")
    raise RowError("empty_turn", field, f"{field!r} has no turns")


def _turn(turn: Any, i: int, field: str) -> Message:
    """One turn, checked field by field; raises RowError naming the position."""
    if not isinstance(turn, dict):
        raise RowError("wrong_type", f"{field}[{i}]", f"turn {i} must be an object, got {type(turn).__name__}")
    if "role" in turn:
        rkey, ckey = "role", "content"
    elif "from" in turn:
        rkey, ckey = "from", "value"
    else:
        raise RowError("missing_field", f"{field}[{i}].role", f"turn {i} has no 'role' (or 'from')")
    role = normalise_role(turn[rkey], f"{field}[{i}].{rkey}")
    if ckey not in turn:
        raise RowError("missing_field", f"{field}[{i}].{ckey}", f"turn {i} has no {ckey!r}")
    content = _content(turn[ckey], f"{field}[{i}].{ckey}")
    if role != "system" and not content.strip():
        # a blank system turn is kept: it stops some templates inserting their default prompt
        raise RowError("empty_turn", f"{field}[{i}].{ckey}", f"turn {i} ({role}) is blank")
    if role == "assistant":
        key = next((k for k in REASONING_FIELDS if turn.get(k) is not None), None)
        return assistant_message(content, turn.get(key) if key else None, f"{field}[{i}].{ckey}", f"{field}[{i}].{key}")
    return Message(role, content)


def _pair(user: str, assistant: str, field: str = "output") -> list[Message]:
    return [Message("user", user), assistant_message(assistant, None, field)]


def _expect(messages: list[Message] | tuple[Message, ...], shape: str) -> None:
    got = "".join(m.role[0] for m in messages)
    if got != shape:
        raise ValueError(f"cannot write roles {got!r} in this schema (needs {shape!r})")


# --- to canonical -----------------------------------------------------------------------------


def _messages_in(row: Mapping[str, Any]) -> list[Message]:
    if "messages" not in row:
        raise RowError("missing_field", "messages", "no 'messages' field")
    return parse_turns(row["messages"], "messages")


def _sharegpt_in(row: Mapping[str, Any]) -> list[Message]:
    if "conversations" not in row:
        raise RowError("missing_field", "conversations", "no 'conversations' field")
    turns = parse_turns(row["conversations"], "conversations")
    if turns[0].role != "system":
        return _optional_system(row) + turns
    return turns


def _alpaca_in(row: Mapping[str, Any]) -> list[Message]:
    instruction = _text(row, "instruction")
    output = _text(row, "output")
    extra = row.get("input")
    if not is_no_input(extra):
        if not isinstance(extra, str):
            raise RowError("wrong_type", "input", f"'input' must be a string, got {type(extra).__name__}")
        instruction = f"{instruction}\n\n{extra}"
    return _optional_system(row) + _pair(instruction, output, "output")


def _self_instruct_in(row: Mapping[str, Any]) -> list[Message]:
    # Self-Instruct seed tasks: one instruction, instances [{input, output}]; each instance is one
    # exchange (the instruction opens the first; a later instance's input, or the instruction again)
    instruction = _text(row, "instruction")
    instances = row["instances"]
    if type(instances) is not list or not instances:
        if not isinstance(instances, list):
            raise RowError("wrong_type", "instances", f"'instances' must be a list of {{input, output}}, got {type(instances).__name__}")
        raise RowError("empty_turn", "instances", "'instances' is empty")
    out = _optional_system(row)
    for i, inst in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(inst, dict):
            raise RowError("wrong_type", where, f"instance {i} must be an object with input and output, got {type(inst).__name__}")
        extra = inst.get("input")
        if not is_no_input(extra) and not isinstance(extra, str):
            raise RowError("wrong_type", f"{where}.input", f"'input' must be a string, got {type(extra).__name__}")
        if i == 0:
            user = instruction if is_no_input(extra) else f"{instruction}\n\n{extra}"
        else:
            user = instruction if is_no_input(extra) else extra
        out += _pair(user, _text(inst, "output", field=f"{where}.output"))
    return out


def _query_response_in(row: Mapping[str, Any]) -> list[Message]:
    return _pair(_text(row, "query"), _text(row, "response"), "response")


def _question_answer_in(row: Mapping[str, Any]) -> list[Message]:
    return _pair(_text(row, "question"), _text(row, "answer"), "answer")


def _prompt_completion_in(row: Mapping[str, Any]) -> list[Message]:
    # TRL accepts both plain strings and conversational lists for prompt and completion
    prompt, completion = row.get("prompt"), row.get("completion")
    head = parse_turns(prompt, "prompt") if isinstance(prompt, list) else [Message("user", _text(row, "prompt"))]
    if isinstance(completion, list):
        tail = parse_turns(completion, "completion")
    else:
        tail = [assistant_message(_text(row, "completion"), None, "completion")]
    return head + tail


def _text_in(row: Mapping[str, Any]) -> list[Message]:
    return [Message("assistant", _text(row, "text"))]


# --- from canonical ---------------------------------------------------------------------------

_SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}


def _messages_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    return {"messages": [m.to_dict() for m in messages]}


def _sharegpt_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    turns = []
    for m in messages:
        turn = {"from": _SHAREGPT_ROLE[m.role], "value": m.content}
        if m.reasoning is not None:
            turn["reasoning_content"] = m.reasoning
        turns.append(turn)
    return {"conversations": turns}


def _said(m: Message) -> str:
    """A turn's text for schemas with no reasoning field: the reasoning goes back inline, so nothing is lost."""
    return inline(m.reasoning, m.content) if m.reasoning is not None else m.content


def _alpaca_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    if messages and messages[0].role == "system":
        _expect(messages, "sua")
        return {"system": messages[0].content, "instruction": messages[1].content, "input": "",
                "output": _said(messages[2])}  # fmt: skip
    _expect(messages, "ua")
    return {"instruction": messages[0].content, "input": "", "output": _said(messages[1])}


def _self_instruct_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    _expect(messages, "ua")
    return {"instruction": messages[0].content, "instances": [{"input": "", "output": messages[1].content}]}


def _pair_out(q: str, a: str) -> Callable[[tuple[Message, ...]], dict[str, Any]]:
    def out(messages: tuple[Message, ...]) -> dict[str, Any]:
        _expect(messages, "ua")
        return {q: messages[0].content, a: _said(messages[1])}

    return out


def _prompt_completion_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    if [m.role for m in messages] == ["user", "assistant"]:
        return {"prompt": messages[0].content, "completion": _said(messages[1])}
    if len(messages) < 2 or messages[-1].role != "assistant":
        raise ValueError("prompt/completion needs at least one turn before a final assistant turn")
    return {"prompt": [m.to_dict() for m in messages[:-1]], "completion": [messages[-1].to_dict()]}


def _text_out(messages: tuple[Message, ...]) -> dict[str, Any]:
    _expect(messages, "a")
    return {"text": messages[0].content}


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """One input schema: the columns that identify it, and both directions of conversion."""

    name: str
    keys: tuple[str, ...]  # all present in a row → the row is in this schema
    to_canonical: Callable[[Mapping[str, Any]], list[Message]]
    from_canonical: Callable[[tuple[Message, ...]], dict[str, Any]]
    meta: dict[str, Any] | None = None  # stamped on every conversation read in this schema
    doc: str = ""


# Detection order breaks ties: richer schemas first, bare `text` last.
SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        Schema("messages", ("messages",), _messages_in, _messages_out,
               doc="OpenAI/TRL chat: messages=[{role, content}, ...]"),
        Schema("sharegpt", ("conversations",), _sharegpt_in, _sharegpt_out,
               doc="ShareGPT: conversations=[{from, value}, ...], optional system"),
        Schema("alpaca", ("instruction", "output"), _alpaca_in, _alpaca_out,
               doc="Alpaca: instruction, input (optional), output, optional system"),
        Schema("self_instruct", ("instruction", "instances"), _self_instruct_in, _self_instruct_out,
               doc="Self-Instruct seed tasks: instruction, instances=[{input, output}, ...]"),
        Schema("query_response", ("query", "response"), _query_response_in, _pair_out("query", "response"),
               doc="query, response (MetaMathQA)"),
        Schema("prompt_completion", ("prompt", "completion"), _prompt_completion_in, _prompt_completion_out,
               doc="prompt, completion (strings or TRL conversational lists)"),
        Schema("question_answer", ("question", "answer"), _question_answer_in, _pair_out("question", "answer"),
               doc="question, answer (GSM8K)"),
        # Raw text is kept as one assistant turn: under assistant-only loss every token of it is
        # trained, which is what language-modelling on raw text means.
        Schema("text", ("text",), _text_in, _text_out, meta={"format": "text"},
               doc="text: one assistant turn holding the whole text"),
    )
}  # fmt: skip

FORMATS: tuple[str, ...] = tuple(SCHEMAS)


def matches(row: Mapping[str, Any]) -> list[str]:
    """The schemas whose identifying columns are all in ``row``, best first."""
    return [s.name for s in SCHEMAS.values() if all(k in row for k in s.keys)]


def detect(rows: list[Mapping[str, Any]]) -> str | None:
    """The schema most of ``rows`` match (ties go to the earlier schema); None when none matches."""
    votes = dict.fromkeys(SCHEMAS, 0)
    for row in rows:
        found = matches(row)
        if found:
            votes[found[0]] += 1
    best = max(votes, key=lambda n: votes[n])  # max() keeps the first of equal counts
    return best if votes[best] else None


def remap(row: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Rename columns for ``--map field=column``: the column's value is read as the field."""
    row = dict(row)
    for field, column in mapping.items():
        if column in row:
            row[field] = row.pop(column)
    return row


def row_meta(row: Mapping[str, Any], meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``meta`` plus the tool schemas a row declares in ``tools`` (a list, or a JSON string of one, as
    glaive / xLAM rows store it): chat templates take them as their ``tools`` argument. RowError if unreadable."""
    tools = row.get("tools")
    if tools is None or tools == "" or tools == []:
        return meta
    if isinstance(tools, str):
        import json

        try:
            tools = json.loads(tools)
        except ValueError:
            raise RowError("wrong_type", "tools", "tools is a string but not JSON") from None
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise RowError("wrong_type", "tools", "tools must be a list of function schemas (objects)")
    return {**(meta or {}), "tools": tools} if tools else meta


def to_canonical(row: Mapping[str, Any], fmt: str) -> list[Message]:
    """The messages of one row in schema ``fmt``; raises RowError with a reject reason."""
    return SCHEMAS[fmt].to_canonical(row)


def from_canonical(messages: tuple[Message, ...] | list[Message], fmt: str) -> dict[str, Any]:
    """One row in schema ``fmt`` holding ``messages``; ValueError when the schema cannot hold them."""
    return SCHEMAS[fmt].from_canonical(tuple(messages))
