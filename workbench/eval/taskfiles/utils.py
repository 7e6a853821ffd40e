"""lm-eval helpers for workbench's held-out tasks: a messages JSONL scored on its last assistant turn.

A held-out row is a canonical messages row ({"messages": [{"role", "content"}, ...]}, as
`workbench ingest` writes). The prompt is every turn before the last assistant turn; the target
is that turn's content. With ``apply_chat_template`` the prompt goes through the model's chat
template turn by turn (exactly as in training, system message included); without it the turns
are joined as ``role: content`` lines.
"""

from __future__ import annotations

import functools
from typing import Any


def split_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], str]:
    """(context turns, target) of a conversation: everything before the last assistant turn, and that turn."""
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None:
        return msgs, ""
    return msgs[:last], msgs[last]["content"]


def transcript(context: list[dict[str, str]]) -> str:
    """The context as plain text (used without a chat template)."""
    if len(context) == 1 and context[0]["role"] == "user":
        return context[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in context) + "\n\nassistant:"


def process_docs(dataset: Any) -> Any:
    """Keep rows that end in an assistant turn; add ``prompt`` (plain text) and ``target``."""

    def fields(row: dict[str, Any]) -> dict[str, Any]:
        context, target = split_messages(row["messages"])
        return {"prompt": transcript(context), "target": target}

    dataset = dataset.filter(lambda row: any(m["role"] == "assistant" for m in row["messages"]))
    return dataset.map(fields)


class HeldoutTask:
    """lm-eval's ``class:`` route for the held-out tasks: constructing it gives the real task, a
    ConfigurableTask subclass built on first use (so importing this file loads no ML library)."""

    def __new__(cls, config: dict[str, Any] | None = None) -> Any:
        return _heldout_class()(config)

    def __init__(self, config: dict[str, Any] | None = None) -> None:  # lm-eval passes config= when __init__ takes it
        pass


@functools.cache
def _heldout_class() -> type:
    from lm_eval.api.task import ConfigurableTask  # here, not at import: workbench's modules import no ML library at load

    class Task(ConfigurableTask):  # type: ignore[misc,valid-type]
        """A generation task whose chat prompt is the conversation's own turns, not one flattened user message."""

        def __init__(self, config: dict[str, Any] | None = None) -> None:
            config = {k: v for k, v in (config or {}).items() if k != "class"}  # lm-eval's router key, not a TaskConfig field
            super().__init__(config=config)

        def fewshot_context(  # type: ignore[override]
            self,
            doc: dict[str, Any],
            num_fewshot: int,
            system_instruction: str | None = None,
            apply_chat_template: bool = False,
            fewshot_as_multiturn: bool = False,
            chat_template: Any = None,
            gen_prefix: str | None = None,
        ) -> str:
            if not (apply_chat_template and chat_template):
                return super().fewshot_context(
                    doc, num_fewshot, system_instruction=system_instruction, apply_chat_template=apply_chat_template,
                    fewshot_as_multiturn=fewshot_as_multiturn, chat_template=chat_template, gen_prefix=gen_prefix,
                )  # fmt: skip
            context, _ = split_messages(doc["messages"])
            if system_instruction and not any(m["role"] == "system" for m in context):
                context = [{"role": "system", "content": system_instruction}, *context]
            return str(chat_template(context, add_generation_prompt=True))

    return Task
