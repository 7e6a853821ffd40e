"""Render conversations through a tokenizer's own chat template (one compiled template for many rows)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from workbench.errors import UsageError, WorkbenchError, first_line
from workbench.records import Conversation, Message
from workbench.template.reasoning import FIELDS as REASONING_FIELDS, inline, normalise

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ConversationLike = Conversation | Sequence[Message] | Sequence[dict[str, Any]]

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
# What apply_chat_template itself passes; template kwargs may not shadow these.
RESERVED_KWARGS = frozenset(
    {"messages", "tools", "documents", "add_generation_prompt", "continue_final_message", "chat_template",
     "return_assistant_tokens_mask", "tokenize"}
)  # fmt: skip
_KWARGS_ATTR = "_workbench_template_kwargs"


class TemplateError(WorkbenchError):
    """The chat template raised (or is missing) for one conversation; the run goes on, the row gets a finding."""


# --- rendering --------------------------------------------------------------------------------


class ChatMessages(list):  # type: ignore[type-arg]
    """Messages that carry the row's tool schemas (``tools``) to every render of them, prefixes included."""

    tools: list[Any] | None = None

    def __getitem__(self, i: Any) -> Any:
        out = super().__getitem__(i)
        if isinstance(i, slice):
            out = ChatMessages(out)
            out.tools = self.tools
        return out


def tools_of(conversation: ConversationLike) -> list[Any] | None:
    """The tool (function) schemas a row declares (a ``tools`` field, e.g. glaive / xLAM rows), or None."""
    tools = conversation.meta.get("tools") if isinstance(conversation, Conversation) else getattr(conversation, "tools", None)
    return tools if isinstance(tools, list) and tools else None


def messages_of(conversation: ConversationLike) -> list[dict[str, Any]]:
    """The conversation as the list of {"role", "content"} dicts chat templates read; an assistant turn's
    reasoning sits in ``reasoning_content`` (an inline ``<think>…</think>`` block in a dict's content is
    split off into it, as ingest does)."""
    msgs = conversation.messages if isinstance(conversation, Conversation) else conversation
    out = [m.to_dict() if isinstance(m, Message) else normalise(dict(m)) for m in msgs]
    tools = tools_of(conversation)
    if tools is None:
        return out
    tagged = ChatMessages(out)  # the row's tool schemas reach every render of it, prefixes included
    tagged.tools = tools
    return tagged


# --- template kwargs ----------------------------------------------------------------------------


def check_template_kwargs(kwargs: Any, where: str = "--template-kwargs") -> dict[str, Any]:
    """``kwargs`` as a plain dict of JSON values for the chat template; UsageError naming ``where`` otherwise."""
    if not isinstance(kwargs, dict):
        raise UsageError(f"{where} must be a JSON object, got {type(kwargs).__name__}", 'for example {"enable_thinking": false}')
    for key, value in kwargs.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise UsageError(f"{where}: {key!r} is not a name a template can read")
        if key in RESERVED_KWARGS:
            raise UsageError(f"{where}: {key!r} is set by workbench itself and cannot be passed")
        _check_json(value, f"{where}.{key}")
    return dict(kwargs)


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for k, v in value.items():
            _check_json(v, f"{where}.{k}")
        return
    raise UsageError(f"{where}: {type(value).__name__} is not a JSON value")


def parse_template_kwargs(text: str | None, where: str = "--template-kwargs") -> dict[str, Any]:
    """A JSON object from the command line (``'{"enable_thinking": false}'``); {} for None or ""."""
    import json

    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where} is not valid JSON: {e}", 'for example --template-kwargs \'{"enable_thinking": false}\'') from None
    return check_template_kwargs(value, where)


def set_template_kwargs(tokenizer: PreTrainedTokenizerBase, kwargs: dict[str, Any] | None) -> None:
    """Extra variables every render of this tokenizer's chat template gets (``enable_thinking``,
    ``reasoning_effort``, ``date_string``...); kept on the tokenizer beside its template, so every
    stage that renders with it, worker processes included, renders the same text."""
    setattr(tokenizer, _KWARGS_ATTR, check_template_kwargs(dict(kwargs or {}), "template_kwargs"))


def template_kwargs_of(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The template kwargs set with ``set_template_kwargs`` ({} when none)."""
    return dict(getattr(tokenizer, _KWARGS_ATTR, None) or {})


def has_generation_tags(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Does the tokenizer's chat template mark assistant output with {% generation %}?"""
    template = tokenizer.chat_template
    return isinstance(template, str) and bool(GENERATION_TAG.search(template))


def render(tokenizer: PreTrainedTokenizerBase, conversation: ConversationLike, *, add_generation_prompt: bool = False) -> str:
    """The conversation as text, through the tokenizer's own ``apply_chat_template``.

    Raises TemplateError when the tokenizer has no chat template or the template raises for this
    conversation (gemma's "roles must alternate", "system role not supported", ...).
    """
    if not tokenizer.chat_template:
        raise TemplateError("the tokenizer has no chat template", "pass --template my.jinja")
    try:
        msgs = messages_of(conversation)
        return tokenizer.apply_chat_template(
            msgs, tools=getattr(msgs, "tools", None), tokenize=False, add_generation_prompt=add_generation_prompt,
            **template_kwargs_of(tokenizer),
        )
    except Exception as e:  # noqa: BLE001 - a template can raise anything; it is this row's problem
        raise TemplateError(f"chat template failed: {_template_message(e)}") from None


def _template_message(e: BaseException) -> str:
    return first_line(e) if str(e).strip() else type(e).__name__


MEMO = 16_384  # messages whose converted form a Renderer keeps (a few batches' worth)


class Renderer:
    """Renders many conversations with one compiled template, as ``apply_chat_template`` does, minus its per-call setup.

    ``render(messages, add_generation_prompt, spans=True)`` also returns the character spans of the
    template's {% generation %} blocks. Every render gets the tokenizer's template kwargs. Falls back
    to ``apply_chat_template`` if transformers' internals move.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        if not tokenizer.chat_template:
            raise TemplateError("the tokenizer has no chat template", "pass --template my.jinja")
        self.template = tokenizer.get_chat_template()
        self.has_tags = bool(GENERATION_TAG.search(self.template))
        self.template_kwargs = template_kwargs_of(tokenizer)
        self.kwargs = {**tokenizer.special_tokens_map, **self.template_kwargs}
        self._reasoning_mode: str | None = None
        try:
            from transformers.utils.chat_template_utils import render_jinja_template

            self._render_jinja = render_jinja_template
        except ImportError:  # pragma: no cover - depends on transformers internals
            self._render_jinja = None
        # id(message) -> (message, its content, converted): a batch's rows are rendered whole, then their prefixes
        self._memo: dict[int, tuple[Any, Any, Any]] = {}
        self._steps = _steps(self.template, self.kwargs) if self._render_jinja is not None else None
        if self._steps is not None and not self._steps_agree():
            self._steps = None

    @property
    def reasoning_mode(self) -> str:
        """How a message's reasoning reaches this template: "field" (it reads ``reasoning_content`` /
        ``thinking``, or drops reasoning whichever way it comes) or "inline" (it reads no reasoning field
        but renders content as given, so the reasoning goes into the content as a ``<think>`` block)."""
        if self._reasoning_mode is None:
            self._reasoning_mode = self._probe_reasoning()
        return self._reasoning_mode

    def _probe_reasoning(self) -> str:
        mark = "workbench reasoning probe"
        user = {"role": "user", "content": "Name a colour of the sky."}
        try:
            text, _ = self._render([user, {"role": "assistant", "content": "Blue.", "reasoning_content": mark}], False, False)
            if mark in text:
                return "field"
            text, _ = self._render([user, {"role": "assistant", "content": inline(mark, "Blue.")}], False, False)
        except TemplateError:
            return "field"
        return "inline" if mark in text else "field"

    def prepare(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` as this template is given them: reasoning inline in the content when the template
        reads no reasoning field (see ``reasoning_mode``)."""
        if not any("reasoning_content" in m for m in messages) or self.reasoning_mode == "field":
            return messages
        out = []
        for m in messages:
            r = m.get("reasoning_content")
            if isinstance(r, str) and m.get("role") == "assistant":
                m = {k: v for k, v in m.items() if k not in REASONING_FIELDS}
                m["content"] = inline(r, str(m.get("content") or ""))
            out.append(m)
        if isinstance(messages, ChatMessages):  # the row's tool schemas stay with it
            tagged = ChatMessages(out)
            tagged.tools = messages.tools
            return tagged
        return out

    def render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False, spans: bool = False
    ) -> tuple[str, list[tuple[int, int]]]:
        """(text, generation spans); raises TemplateError."""
        return self._render(self.prepare(messages), add_generation_prompt, spans)

    def _render(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool, spans: bool
    ) -> tuple[str, list[tuple[int, int]]]:
        if self._steps is not None:
            tools = getattr(messages, "tools", None)
            if tools is None or all(isinstance(t, dict) for t in tools):
                try:
                    return self._render_steps(messages, tools, add_generation_prompt, spans)
                except Exception as e:  # noqa: BLE001
                    raise TemplateError(f"chat template failed: {_template_message(e)}") from None
        return self._render_whole(messages, add_generation_prompt, spans)

    def _render_steps(
        self, messages: list[dict[str, Any]], tools: list[Any] | None, add_generation_prompt: bool, spans: bool
    ) -> tuple[str, list[tuple[int, int]]]:
        """``render_jinja_template``'s own steps, with each message converted once for all the renders it is in
        (render-and-diff renders a row, then its prefixes; the row checks render prefixes again)."""
        steps = self._steps
        assert steps is not None
        memo = self._memo
        chat = []
        for m in messages:
            hit = memo.get(id(m))
            # the same message object holding the same content object (a message edited in place is converted anew)
            if hit is None or hit[0] is not m or hit[1] is not _content(m):
                if not isinstance(m, dict):
                    raise TypeError(f"Chat messages should be dicts, dataclasses or pydantic models, but got {m!r}.")
                if len(memo) >= MEMO:
                    memo.clear()
                hit = memo[id(m)] = (m, _content(m), steps.alias(steps.plain([m]))[0])
            chat.append(hit[2])
        tool_schemas = steps.plain(tools) if tools is not None else None
        if spans and self.has_tags:
            text, indices = steps.tracked(steps.compiled, chat, tool_schemas, None, add_generation_prompt, **steps.kwargs)
            return text, [tuple(s) for s in indices]
        text = steps.compiled.render(messages=chat, tools=tool_schemas, documents=None, add_generation_prompt=add_generation_prompt, **steps.kwargs)
        return text, []

    def _steps_agree(self) -> bool:
        """Do the split steps render what ``render_jinja_template`` renders (probe conversations, spans included)?"""
        probes = [
            [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello.", "reasoning_content": "A greeting."},
             {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye."}],
        ]  # fmt: skip
        def outcome(render: Any, *args: Any) -> Any:
            self._memo.clear()
            try:
                return render(*args)
            except Exception:  # noqa: BLE001
                return "raised"

        for msgs in probes:
            for gen in (False, True):
                for spans in (False, True):
                    given = msgs[:-1] if gen else msgs
                    if outcome(self._render_steps, given, None, gen, spans) != outcome(self._render_whole, given, gen, spans):
                        return False
        self._memo.clear()
        return True

    def _render_whole(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool, spans: bool
    ) -> tuple[str, list[tuple[int, int]]]:
        import warnings

        try:
            if self._render_jinja is None:
                return self._render_public(messages, add_generation_prompt), []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                texts, indices = self._render_jinja(
                    conversations=[messages],
                    tools=getattr(messages, "tools", None),  # the template's own `tools` argument
                    chat_template=self.template,
                    return_assistant_tokens_mask=spans and self.has_tags,
                    add_generation_prompt=add_generation_prompt,
                    **self.kwargs,
                )
        except TemplateError:
            raise
        except Exception as e:  # noqa: BLE001
            raise TemplateError(f"chat template failed: {_template_message(e)}") from None
        return texts[0], [tuple(s) for s in indices[0]] if spans and indices else []

    def _render_public(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=getattr(messages, "tools", None), tokenize=False, add_generation_prompt=add_generation_prompt,
            **self.template_kwargs,
        )


class _Steps:
    """transformers' steps of ``render_jinja_template`` (its compiled template, data conversion, reasoning aliases,
    generation tracker), held apart so one row's messages are converted once for all of its renders."""

    def __init__(self, compiled: Any, plain: Any, alias: Any, tracked: Any, kwargs: dict[str, Any]) -> None:
        self.compiled, self.plain, self.alias, self.tracked, self.kwargs = compiled, plain, alias, tracked, kwargs


def _content(message: Any) -> Any:
    return message.get("content") if isinstance(message, dict) else None


@lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    """The template compiled by transformers' own compile (its sandbox, its {% generation %} tracker), as workbench's
    own copy: its globals (a ChainMap over the environment's, which every render copies into a dict) flattened
    into a dict of the same names, a fifth of a render's time."""
    from transformers.utils import chat_template_utils as ctu

    fresh = getattr(ctu, "_cached_compile_jinja_template", None)  # the compile behind transformers' lru_cache
    if fresh is None:
        return ctu._compile_jinja_template(template)  # transformers' shared copy: left as it is
    compiled = fresh(template)
    compiled.globals = dict(compiled.globals)
    return compiled


def _steps(template: str, kwargs: dict[str, Any]) -> _Steps | None:
    """The steps, or None when this transformers lacks one of them (``Renderer`` then calls the whole function)."""
    try:
        from transformers.utils import chat_template_utils as ctu

        plain = ctu._plain_template_data
        return _Steps(_compiled(template), plain, ctu._alias_reasoning_fields, ctu._render_with_assistant_indices, plain(kwargs))
    except Exception:  # noqa: BLE001 - internals moved, or the template does not compile (each render then says why)
        return None
