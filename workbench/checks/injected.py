"""Text a chat template adds that no message holds (dated headers, identity blocks), and renders that change with the
day they are made on (``strftime_now``), found by rendering the same probe on two different dates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.hits import divergence
from workbench.records import Finding
from workbench.template.chat import Renderer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Msgs = list[dict[str, Any]]

# Words chat templates use as markup (roles, channels, header names): not prose a template injects.
MARKUP = frozenset(
    {"system", "user", "assistant", "tool", "tools", "developer", "model", "human", "bot", "ipython", "analysis",
     "final", "commentary", "function", "functions", "inst", "sys", "think", "message", "channel", "start", "end",
     "header", "role", "text", "eot", "im", "of", "to"}
)  # fmt: skip
MIN_WORDS = 3  # a piece of template text with fewer prose words is markup
DAYS = (datetime(2024, 1, 2, 9, 30), datetime(2031, 11, 23, 18, 5))  # two renders, far apart in every field
PIN = {"date_string": "26 Jul 2024"}  # the variable Llama-3.x templates read instead of today's date


def prose(tokenizer: PreTrainedTokenizerBase, text: str, contents: Sequence[str]) -> list[str]:
    """The pieces of ``text`` that are neither a message's content nor a token of the vocabulary's own, and
    read as words (at least MIN_WORDS of them beyond markup)."""
    for c in sorted((c for c in contents if c), key=len, reverse=True):
        text = text.replace(c, "\0")
    for token in sorted(tokenizer.get_added_vocab(), key=len, reverse=True):
        if len(token) > 1:
            text = text.replace(token, "\0")
    pieces = [p.strip() for p in text.split("\0")]
    return [p for p in pieces if sum(1 for w in re.findall(r"[A-Za-z]{2,}", p) if w.lower() not in MARKUP) >= MIN_WORDS]


def injected_checks(
    tokenizer: PreTrainedTokenizerBase,
    renderer: Renderer,
    probe: Msgs,
    system_probe: Msgs,
    rows: Sequence[Msgs],
    ids: Sequence[str],
    facts: Any,
) -> list[Finding]:
    """``injected_text`` for prose every render carries (with or without a system turn) and ``date_in_render``
    for renders that change with the date."""
    out: list[Finding] = []
    n = len(rows)
    plain, with_system = _render(renderer, probe), _render(renderer, system_probe)
    if plain is not None and with_system is not None:
        contents = [str(m.get("content") or "") for m in system_probe]
        always = [p for p in prose(tokenizer, plain, contents) if p in prose(tokenizer, with_system, contents)]
        if always:
            facts.injected_text = always
            tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in always)
            shown = " / ".join(repr(p if len(p) <= 120 else p[:119] + "…") for p in always)
            out.append(finding(
                "injected_text",
                f"every render carries text the template writes itself, about {tokens} tokens a row that no message "
                f"holds: {shown}",
                data={"text": always, "tokens": tokens},
            ))  # fmt: skip
    dated = _dated(renderer, probe, system_probe)
    facts.date_dependent = None if dated is False else bool(dated)
    if dated:
        which, (first, second), pinnable = dated
        has_system = [bool(r) and r[0].get("role") == "system" for r in rows]
        affected = [i for i, s in zip(ids, has_system) if (s and "system" in which) or (not s and "plain" in which)]
        how = (
            "passing date_string (--template-kwargs) pins it"
            if pinnable
            else "the template reads no date variable, so --template-kwargs cannot pin it"
        )
        out.append(finding(
            "date_in_render",
            f"the chat template writes the day it renders on (strftime_now): rendered on {DAYS[0]:%Y-%m-%d} a row reads "
            f"{first!r}, on {DAYS[1]:%Y-%m-%d} {second!r}; {how}"
            + (f"; affected: {rows_phrase(affected, n)}" if affected else "; no row is affected"),
            affected,
            data={"renders": [first, second], "date_string_pins_it": pinnable, "probes": sorted(which)},
            severity=None if affected else "info",
        ))  # fmt: skip
    return out


def _render(renderer: Renderer, msgs: Msgs) -> str | None:
    from workbench.template.chat import TemplateError

    try:
        return renderer.render(msgs)[0]
    except TemplateError:
        return None


def _line_at(text: str, at: int) -> str:
    """The line of ``text`` that holds char ``at`` (at most 100 characters of it)."""
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    line = text[start : end if end >= 0 else len(text)]
    return line if len(line) <= 100 else line[:99] + "…"


def _dated(renderer: Renderer, probe: Msgs, system_probe: Msgs) -> Any:
    """None when renders do not depend on the date; False when that cannot be told; else (which probes change:
    {"plain", "system"}, (the differing text on each day), whether passing date_string pins it)."""
    if "strftime_now" not in renderer.template:
        return None  # a template reaches the clock only by calling strftime_now by name: no need to compile a copy
    try:
        from transformers.utils.chat_template_utils import (
            _cached_compile_jinja_template,
        )
    except ImportError:  # pragma: no cover - depends on transformers internals
        return False
    # a private compile whose clock is set per render: the shared, cached template keeps the real one
    template = _cached_compile_jinja_template(renderer.template)

    def on(day: datetime, msgs: Msgs, extra: dict[str, Any]) -> str | None:
        template.globals["strftime_now"] = lambda fmt: day.strftime(fmt)
        try:
            return template.render(messages=msgs, add_generation_prompt=False, **{**renderer.kwargs, **extra})
        except Exception:  # noqa: BLE001 - a template can raise anything; the row checks report it
            return None

    which: set[str] = set()
    pair: tuple[str, str] | None = None
    for name, msgs in (("plain", probe), ("system", system_probe)):
        a, b = on(DAYS[0], msgs, {}), on(DAYS[1], msgs, {})
        if a is not None and b is not None and a != b:
            which.add(name)
            if pair is None:
                pair = (_line_at(a, divergence(a, b)), _line_at(b, divergence(a, b)))
    if not which or pair is None:
        return None
    msgs = probe if "plain" in which else system_probe
    pinnable = on(DAYS[0], msgs, PIN) == on(DAYS[1], msgs, PIN)
    return which, pair, pinnable
