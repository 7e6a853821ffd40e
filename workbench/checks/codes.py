"""The finding codes of `workbench check`: each one's severity, what it means, and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.records import Finding


@dataclass(frozen=True, slots=True)
class Code:
    """One kind of finding: its default severity, a one-line meaning (the README table) and the fix."""

    severity: str
    meaning: str
    hint: str


CODES: dict[str, Code] = {
    # --- the template itself ---
    "no_chat_template": Code(
        "error",
        "the tokenizer has no chat template (a base model): nothing can be rendered",
        "pass --template FILE: the instruct sibling's template (its tokenizer_config.json `chat_template`), "
        "or a generic one such as ChatML (workbench/template/jinja/chatml.jinja) - whose <|im_start|>/<|im_end|> "
        "must then be added as special tokens and the embeddings resized before training",
    ),
    "render_error": Code(
        "error",
        "the chat template raised for these rows (grouped by the error it raised)",
        "fix the rows or the template; the message is the template's own",
    ),
    "system_unsupported": Code(
        "error",
        "the template rejects a system turn (gemma-2 style); these rows cannot be rendered",
        "merge the system prompt into the first user turn, drop it, or choose a template that accepts one",
    ),
    "roles_not_alternating": Code(
        "error",
        "the template requires user/assistant turns to alternate and these rows do not",
        "merge consecutive turns of the same role (or drop the extra ones) before training",
    ),
    "hidden_system_prompt": Code(
        "warning",
        "the template injects a default system prompt into rows that have none, and it is trained on as context",
        "give these rows an explicit system turn (even an empty one) if you do not want the default",
    ),
    "injected_text": Code(
        "info",
        "the template adds text no message holds to every render (Llama-3's \"Cutting Knowledge Date\" header, "
        "gpt-oss's \"You are ChatGPT\" block): every row is trained with it as context",
        "expect it at inference too (the same template adds it); to change it pass the variable the template reads "
        "with --template-kwargs (gpt-oss: model_identity, reasoning_effort) or edit the template",
    ),
    "date_in_render": Code(
        "warning",
        "the render holds the date it is made on (the template calls strftime_now): the same row gives different "
        "tokens on another day, and training carries the training day's date",
        "pin the date: --template-kwargs '{\"date_string\": \"26 Jul 2024\"}' (model.template_kwargs in a recipe) "
        "where the template reads date_string (Llama-3.x); otherwise render once and keep the tokens, or edit the "
        "template to read the date from a variable",
    ),
    "system_prompt_moved": Code(
        "warning",
        "the template does not put the system prompt at the start (e.g. Mistral-Nemo: only in the last user turn)",
        "expect earlier turns to be trained without it; keep the template's layout at inference, "
        "or use a template that places the system prompt first",
    ),
    "system_dropped": Code(
        "warning",
        "the template silently drops the system turn: its text never reaches the model",
        "merge the system prompt into the first user turn, or use a template that renders system turns",
    ),
    # --- tokens: BOS, pad, end of turn, stop ---
    "double_bos": Code(
        "error",
        "apply_chat_template(tokenize=True) holds two BOS tokens among its first tokens",
        "remove the BOS from the template or stop the tokenizer from adding one (add_bos_token: false)",
    ),
    "double_bos_retokenized": Code(
        "warning",
        "the template writes BOS itself and the tokenizer adds one too: re-tokenizing the rendered text "
        "with add_special_tokens=True gives a double BOS",
        "tokenize with apply_chat_template(tokenize=True), or pass add_special_tokens=False when "
        "tokenizing rendered text (TRL: train on messages, not on pre-rendered text)",
    ),
    "pad_is_eos": Code(
        "warning",
        "the pad token is the EOS / end-of-turn token: a collator that masks padding also masks the stop token "
        "(info when turns end with another token)",
        "set a dedicated pad token (an unused special token, e.g. <|finetune_right_pad_id|> or <pad>), not EOS",
    ),
    "no_pad_token": Code(
        "info",
        "the tokenizer has no pad token; trainers often fall back to pad = EOS",
        "set a dedicated pad token before training so padding never masks the EOS",
    ),
    "eot_not_stop": Code(
        "error",
        "training ends each assistant turn with a token that generation does not stop on "
        "(a warning when no config.json / generation_config.json is found beside the tokenizer)",
        "add the end-of-turn id to generation_config.json eos_token_id (a list is fine), or set the "
        "tokenizer's eos_token to it",
    ),
    "stop_tokens_disagree": Code(
        "warning",
        "tokenizer_config, config.json and generation_config.json name different EOS tokens, and some "
        "leave out the template's end-of-turn token",
        "make every file's eos_token_id include the end-of-turn id so every inference stack stops there",
    ),
    "multi_token_eot": Code(
        "warning",
        "the template's end-of-turn marker encodes to more than one token; generation cannot stop on one id",
        "add the marker as a special token (and resize the embeddings), or configure stop strings at inference",
    ),
    "eot_not_trained": Code(
        "error",
        "an assistant turn's end-of-turn token is not in the labels: the model never learns to stop",
        "make the template close every assistant turn with the end-of-turn/EOS token inside the trained "
        "region (inside {% generation %} when it has tags)",
    ),
    # --- train / inference parity ---
    "generation_prompt_mismatch": Code(
        "error",
        "rendering up to the last assistant turn with add_generation_prompt=True is not a token prefix of the "
        "training render: inference shows the model tokens it never saw in training",
        "make the generation prompt exactly the text that opens an assistant turn in the template",
    ),
    "not_prefix_preserving": Code(
        "warning",
        "the template renders an earlier turn differently once later turns follow (the message names what changes: "
        "removed reasoning, a different end of turn, a moved system prompt)",
        "expect earlier assistant turns to be trained as the template renders history; split multi-turn rows into "
        "one row per assistant turn if each turn must be trained as it was generated",
    ),
    "generation_prompt_opens_reasoning": Code(
        "warning",
        "the generation prompt opens a reasoning block (<think>) that the training render of these rows lacks "
        "or closes empty: at inference the model is prompted to reason, in training it answers without reasoning",
        "add the reasoning to these rows (reasoning_content, or <think>…</think> before the answer), or render "
        "without it where the template allows (--template-kwargs '{\"enable_thinking\": false}')",
    ),
    # --- reasoning ---
    "reasoning_dropped": Code(
        "warning",
        "the template drops the reasoning of some assistant turns (Qwen3: of turns before the last user message; "
        "DeepSeek-R1: of every turn), so those reasoning tokens are never trained",
        "split multi-turn rows into one row per assistant turn (each turn is then the last and keeps its "
        "reasoning), or use a template that keeps reasoning (TRL's qwen3_training.jinja, "
        "deepseek_r1_distill_training.jinja) with --template",
    ),
    "reasoning_inline": Code(
        "info",
        "the template reads no reasoning field (reasoning_content / thinking), so each turn's reasoning is written "
        "into its content as <think>…</think> before the answer, as reasoning models emit it, and trained there",
        "this is where workbench and TRL part: TRL renders the messages as they are, and this template would drop "
        "reasoning_content; keep it inline in the content (as here) or drop it from the data",
    ),
    "template_text_trained": Code(
        "info",
        "trained regions hold text the template writes, not the data: an empty reasoning block, a channel "
        "header, or what the {% generation %} tags cover beyond the answer and its end-of-turn token",
        "nothing to fix: the model generates this text at inference (tags: trained as tagged, as TRL does); "
        "see `workbench mask` for the tokens",
    ),
    # --- the loss mask ---
    "mask_unverified": Code(
        "error",
        "a trained region is not exactly one assistant turn: its answer, closed by its end-of-turn token, and before "
        "it only the template's own text for that turn (a reasoning block, a channel header)",
        "see `data` for the problems; often the template rewrites or drops part of the content - "
        "look at one row with `workbench mask DATA --model M --id ID`",
    ),
    "mask_disagreement": Code(
        "warning",
        "the template's {% generation %} tags and the template-agnostic derivation train different tokens; "
        "the message names the side that is off (the tags are used, as TRL uses them)",
        "when the tags are off, fix the {% generation %} tags (TRL trains on exactly what they cover); when the "
        "render-and-diff derivation is off, the template rewrites the turn and the tags are right",
    ),
    "no_trained_tokens": Code(
        "error",
        "rows with zero trained tokens (no assistant turn, or none of it is trained)",
        "drop these rows or give them an assistant answer",
    ),
    "trailing_turn": Code(
        "warning",
        "the conversation ends after the last assistant reply (a user or tool turn with no answer)",
        "drop the trailing turns, or add the assistant's answer to them; they cost tokens and train nothing",
    ),
    # --- truncation ---
    "over_max_length": Code(
        "warning",
        "rows longer than --max-length: their tail, assistant tokens included, is cut",
        "raise --max-length, or drop/split the long rows",
    ),
    "truncation_cuts_eot": Code(
        "warning",
        "truncation removes the row's final end-of-turn token: the model is trained on an answer that never ends",
        "raise --max-length, or drop the long rows rather than truncate them",
    ),
    "truncated_to_nothing": Code(
        "error",
        "after truncation to --max-length these rows have zero trained tokens (the prompt fills the budget)",
        "drop these rows or raise --max-length",
    ),
}

# Facts of the template or tokenizer, whatever the row: the rows they name follow from a simple property
# (no system turn, a system turn), so a viewer states them once rather than flagging every row.
TEMPLATE_WIDE: frozenset[str] = frozenset({
    "no_chat_template", "hidden_system_prompt", "system_prompt_moved", "system_dropped", "double_bos",
    "double_bos_retokenized", "pad_is_eos", "no_pad_token", "eot_not_stop", "stop_tokens_disagree", "multi_token_eot",
})  # fmt: skip


def finding(
    code: str,
    message: str,
    example_ids: Iterable[str] = (),
    *,
    data: dict[str, Any] | None = None,
    severity: str | None = None,
    hint: str | None = None,
) -> Finding:
    """A Finding with ``code``'s severity and hint from the registry (``hint`` when the cause calls for
    another); example ids sorted and distinct."""
    spec = CODES[code]
    return Finding(code, severity or spec.severity, message, unique(example_ids), hint or spec.hint, dict(data or {}))


def some(ids: Sequence[str], k: int = 3) -> str:
    """'a, b, c and 4 more': a few example ids for a message."""
    if not ids:
        return ""
    shown = ", ".join(ids[:k])
    return shown if len(ids) <= k else f"{shown} and {len(ids) - k} more"


def unique(ids: Iterable[str]) -> list[str]:
    """Sorted distinct ids (rows with the same content share one)."""
    return sorted(set(ids))


def rows_phrase(ids: Sequence[str], total: int) -> str:
    """'3 of 120 rows (e.g. a, b, c)': ``ids`` has one entry per row, duplicates included."""
    noun = "row" if total == 1 else "rows"
    return f"{len(ids)} of {total} {noun} (e.g. {some(unique(ids))})"
