"""Render conversations through a tokenizer's own chat template (one compiled template for many rows)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError, first_line
from workbench.records import Conversation, Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ConversationLike = Conversation | Sequence[Message] | Sequence[dict[str, Any]]

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


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
    """The conversation as the list of {"role", "content"} dicts chat templates read (with its tools, if any)."""
    msgs = conversation.messages if isinstance(conversation, Conversation) else conversation
    out = [m.to_dict() if isinstance(m, Message) else dict(m) for m in msgs]
    tools = tools_of(conversation)
    if tools is None:
        return out
    tagged = ChatMessages(out)
    tagged.tools = tools
    return tagged


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
            msgs, tools=getattr(msgs, "tools", None), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as e:  # noqa: BLE001 - a template can raise anything; it is this row's problem
        raise TemplateError(f"chat template failed: {_template_message(e)}") from None


def _template_message(e: BaseException) -> str:
    return first_line(e) if str(e).strip() else type(e).__name__


class Renderer:
    """Renders many conversations with one compiled template, as ``apply_chat_template`` does, minus its per-call setup.

    ``render(messages, add_generation_prompt, spans=True)`` also returns the character spans of the
    template's {% generation %} blocks. Falls back to ``apply_chat_template`` if transformers'
    internals move.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        if not tokenizer.chat_template:
            raise TemplateError("the tokenizer has no chat template", "pass --template my.jinja")
        self.template = tokenizer.get_chat_template()
        self.has_tags = bool(GENERATION_TAG.search(self.template))
        self.kwargs = dict(tokenizer.special_tokens_map)
        try:
            from transformers.utils.chat_template_utils import render_jinja_template

            self._render_jinja = render_jinja_template
        except ImportError:  # pragma: no cover - depends on transformers internals
            self._render_jinja = None

    def render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False, spans: bool = False
    ) -> tuple[str, list[tuple[int, int]]]:
        """(text, generation spans); raises TemplateError."""
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
            messages, tools=getattr(messages, "tools", None), tokenize=False, add_generation_prompt=add_generation_prompt
        )
