"""Tokenizer- and template-level checks, run once on probe conversations: BOS, pad, stop tokens, system prompt handling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.injected import injected_checks
from workbench.records import Finding
from workbench.template.chat import Renderer, TemplateError
from workbench.template.tokenizer import stop_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Msgs = list[dict[str, Any]]

# Plain words every template renders verbatim (no leading/trailing space a template could trim).
PROBE: Msgs = [
    {"role": "user", "content": "Name a colour of the sky."},
    {"role": "assistant", "content": "Blue."},
]
PROBE_MULTI: Msgs = [
    {"role": "user", "content": "Name a colour of the sky."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "And of grass?"},
    {"role": "assistant", "content": "Green."},
]
SYSTEM_PROBE = "Workbench probe system prompt: answer in one word."
BOS_WINDOW = 8  # where a template's header ends and a second BOS would be a double one


@dataclass(slots=True)
class TemplateFacts:
    """What the probes learned about the tokenizer and its template; shown by the CLI, reused by the row checks."""

    has_template: bool
    generation_tags: bool = False
    bos: str | None = None
    eos: str | None = None
    pad: str | None = None
    adds_bos: bool = False
    end_of_turn: str | None = None  # the marker the template writes after an assistant turn
    end_of_turn_ids: list[int] = field(default_factory=list)
    stop_ids: dict[str, list[int] | None] = field(default_factory=dict)  # per source file
    default_system: str | None = None
    system_in_training: str | None = None  # "start" | "later" | "absent" | "unsupported"
    system_at_inference: str | None = None
    injected_text: list[str] = field(default_factory=list)  # prose every render carries that no message holds
    date_dependent: bool | None = None  # does a render change with the day it is made on (None: not known)
    reasoning: str | None = None  # how reasoning reaches the template: "field" or "inline" (see Renderer.reasoning_mode)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def template_checks(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Msgs],
    ids: Sequence[str],
    *,
    model_dir: str | Path | None = None,
) -> tuple[list[Finding], TemplateFacts]:
    """Checks that depend on the tokenizer and template only; ``rows`` decide which examples a finding affects."""
    from workbench.template.chat import has_generation_tags

    stops = stop_tokens(tokenizer, model_dir)
    facts = TemplateFacts(
        has_template=bool(tokenizer.chat_template),
        bos=stops.bos,
        eos=stops.tokenizer_eos,
        pad=stops.pad,
        adds_bos=stops.adds_bos,
        stop_ids={
            "tokenizer_config.json eos_token": [stops.tokenizer_eos_id] if stops.tokenizer_eos_id is not None else None,
            "config.json eos_token_id": stops.config_eos_ids,
            "generation_config.json eos_token_id": stops.generation_eos_ids,
        },
    )
    findings: list[Finding] = []
    if not facts.has_template:
        findings.append(finding("no_chat_template", f"the tokenizer has no chat template, so none of the {len(rows)} rows can be rendered"))
        findings += _pad_checks(tokenizer, facts, None)
        return findings, facts
    facts.generation_tags = has_generation_tags(tokenizer)
    renderer = Renderer(tokenizer)
    probe = _first_renderable(renderer, [PROBE, *(r for r in rows[:20] if _ends_with_assistant(r))])
    eot: int | None = None
    if probe is not None:
        eot, marker = _end_of_turn(tokenizer, renderer, probe, findings)
        facts.end_of_turn = marker
        facts.end_of_turn_ids = [eot] if eot is not None else _encode(tokenizer, marker) if marker else []
        findings += _bos_checks(tokenizer, renderer, probe, facts)
        if eot is not None:
            findings += _stop_checks(tokenizer, facts, eot)
    findings += _pad_checks(tokenizer, facts, eot)
    findings += _system_checks(tokenizer, renderer, rows, ids, facts)
    findings += injected_checks(tokenizer, renderer, PROBE, [{"role": "system", "content": SYSTEM_PROBE}, *PROBE], rows, ids, facts)
    thought = [i for i, r in zip(ids, rows) if any("reasoning_content" in m for m in r)]
    if thought:
        facts.reasoning = renderer.reasoning_mode
        if facts.reasoning == "inline":
            findings.append(finding(
                "reasoning_inline",
                f"the template reads no reasoning field: the reasoning of {rows_phrase(thought, len(rows))} is written into "
                "the answer as <think>…</think> and trained there",
                thought,
            ))  # fmt: skip
    return findings, facts


# --- probes -----------------------------------------------------------------------------------


def _ends_with_assistant(msgs: Msgs) -> bool:
    return len(msgs) >= 2 and msgs[-1].get("role") == "assistant" and bool(str(msgs[-1].get("content") or "").strip())


def _first_renderable(renderer: Renderer, candidates: Sequence[Msgs]) -> Msgs | None:
    for msgs in candidates:
        try:
            renderer.render(msgs)
            return msgs
        except TemplateError:
            continue
    return None


def _render(renderer: Renderer, msgs: Msgs, gen: bool = False) -> str | None:
    try:
        return renderer.render(msgs, add_generation_prompt=gen)[0]
    except TemplateError:
        return None


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids |= {i for i, t in decoder.items() if getattr(t, "special", False)}
    return ids


def _end_of_turn(
    tokenizer: PreTrainedTokenizerBase, renderer: Renderer, probe: Msgs, findings: list[Finding]
) -> tuple[int | None, str | None]:
    """The token (or text) the template writes right after an assistant turn's content."""
    full = _render(renderer, probe) or ""
    prompt = _render(renderer, probe[:-1], gen=True) or ""
    content = str(probe[-1]["content"])
    start = len(prompt) if full.startswith(prompt) else 0
    at = full.find(content, start)
    if at < 0:
        content = content.strip()
        at = full.find(content, start)
    if at < 0:
        return None, None
    tail = full[at + len(content) :].lstrip()
    if not tail:
        return None, None  # nothing closes the turn: the row checks report eot_not_trained
    ids = _encode(tokenizer, tail)
    if ids and ids[0] in _special_ids(tokenizer):
        return ids[0], tokenizer.convert_ids_to_tokens(ids[0])
    marker = tail.splitlines()[0].strip() or tail.strip()
    marker_ids = _encode(tokenizer, marker)
    if len(marker_ids) > 1:
        pieces = tokenizer.convert_ids_to_tokens(marker_ids)
        findings.append(
            finding(
                "multi_token_eot",
                f"assistant turns end with {marker!r}, which encodes to {len(marker_ids)} tokens {pieces}, not one",
                data={"marker": marker, "ids": marker_ids},
            )
        )
        return None, marker
    return (marker_ids[0] if marker_ids else None), marker


def _bos_checks(tokenizer: PreTrainedTokenizerBase, renderer: Renderer, probe: Msgs, facts: TemplateFacts) -> list[Finding]:
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    out: list[Finding] = []
    try:
        enc = tokenizer.apply_chat_template(probe, tokenize=True, **renderer.template_kwargs)
        chat_ids = list(enc["input_ids"] if hasattr(enc, "keys") else enc)
    except Exception:  # noqa: BLE001 - the probe rendered above; a tokenize-path failure is not this check's finding
        chat_ids = []
    # a second BOS anywhere among the first tokens: some templates start with "\n<s>"
    if chat_ids[:BOS_WINDOW].count(bos) >= 2:
        out.append(finding("double_bos", f"apply_chat_template(tokenize=True) holds {facts.bos!r} twice in its first {BOS_WINDOW} tokens"))
    text = _render(renderer, probe) or ""
    retok = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if retok[:BOS_WINDOW].count(bos) >= 2:
        out.append(
            finding(
                "double_bos_retokenized",
                f"the template writes {facts.bos!r} and the tokenizer adds another when the rendered text is "
                "tokenized with add_special_tokens=True",
                data={"bos": facts.bos, "bos_id": bos},
            )
        )
    return out


def _stop_checks(tokenizer: PreTrainedTokenizerBase, facts: TemplateFacts, eot: int) -> list[Finding]:
    def names(ids: list[int]) -> str:
        return ", ".join(f"{t!r} ({i})" for t, i in zip(tokenizer.convert_ids_to_tokens(ids), ids))

    present = {src: ids for src, ids in facts.stop_ids.items() if ids is not None}
    # What generate() stops on: generation_config.json, else config.json, else the tokenizer's EOS.
    order = ["generation_config.json eos_token_id", "config.json eos_token_id", "tokenizer_config.json eos_token"]
    effective = next((src for src in order if src in present), None)
    data = {"end_of_turn": facts.end_of_turn, "end_of_turn_id": eot, "stop_ids": facts.stop_ids}
    if effective is None:
        return []
    if eot not in present[effective]:
        alone = len(present) == 1  # no config.json / generation_config.json beside the tokenizer
        return [
            finding(
                "eot_not_stop",
                f"assistant turns end with {facts.end_of_turn!r} ({eot}) but generation stops on "
                f"{names(present[effective])} (from {effective}"
                + ("; no config.json or generation_config.json was found" if alone else "") + ")",
                data=data,
                # Without the model's config files we cannot see what generate() will use: a warning.
                severity="warning" if alone else None,
            )
        ]
    missing = [src for src, ids in present.items() if eot not in ids]
    if not missing:
        return []
    detail = "; ".join(f"{src} is {names(present[src])}" for src in missing)
    return [
        finding(
            "stop_tokens_disagree",
            f"assistant turns end with {facts.end_of_turn!r} ({eot}) and {effective} stops there, but {detail}",
            data=data,
        )
    ]


def _pad_checks(tokenizer: PreTrainedTokenizerBase, facts: TemplateFacts, eot: int | None) -> list[Finding]:
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None:
        return [finding("no_pad_token", "the tokenizer has no pad token")]
    if pad == eot:
        return [finding("pad_is_eos", f"the pad token {facts.pad!r} is the token that ends every trained assistant turn")]
    if pad == eos:
        # The trained end of turn is another token (Phi-3: <|end|>), so masking pad costs no trained label.
        return [
            finding(
                "pad_is_eos",
                f"the pad token {facts.pad!r} is the EOS token (turns end with {facts.end_of_turn!r}, so no trained label is lost)",
                severity="info",
            )
        ]
    return []


# --- system prompt ----------------------------------------------------------------------------


def _where(text: str | None, first_user: str) -> str:
    """Where the probe system prompt sits in a render: start, later (after the first user content), absent."""
    if text is None:
        return "unsupported"
    at = text.find(SYSTEM_PROBE)
    if at < 0:
        return "absent"
    user = text.find(first_user)
    return "start" if user < 0 or at < user else "later"


_WHERE = {
    "start": "at the start",
    "later": "inside a later user turn",
    "absent": "absent",
    "unsupported": "rejected",
}


def _system_checks(
    tokenizer: PreTrainedTokenizerBase, renderer: Renderer, rows: Sequence[Msgs], ids: Sequence[str], facts: TemplateFacts
) -> list[Finding]:
    out: list[Finding] = []
    system = {"role": "system", "content": SYSTEM_PROBE}
    with_sys = _render(renderer, [system, *PROBE])
    without = _render(renderer, PROBE)
    with_system_rows = [i for i, r in zip(ids, rows) if r and r[0].get("role") == "system"]
    no_system_rows = [i for i, r in zip(ids, rows) if not r or r[0].get("role") != "system"]
    n = len(rows)

    # Hidden default: the no-system render equals the system render with the probe text replaced by something.
    if with_sys is not None and without is not None and SYSTEM_PROBE in with_sys:
        pre, _, post = with_sys.partition(SYSTEM_PROBE)
        if without.startswith(pre) and without.endswith(post) and len(without) > len(pre) + len(post):
            default = without[len(pre) : len(without) - len(post)]
            if default.strip():
                facts.default_system = default
                sev = None if no_system_rows else "info"
                out.append(
                    finding(
                        "hidden_system_prompt",
                        f"rows without a system turn get the template's default system prompt {default!r}"
                        + (f": {rows_phrase(no_system_rows, n)}" if no_system_rows else " (every row has its own)"),
                        no_system_rows,
                        data={"default_system": default},
                        severity=sev,
                    )
                )

    first_user = str(PROBE_MULTI[0]["content"])
    train = _where(_render(renderer, [system, *PROBE_MULTI]), first_user)
    infer = _where(_render(renderer, [system, *PROBE_MULTI[:-1]], gen=True), first_user)
    facts.system_in_training, facts.system_at_inference = train, infer
    if train == "unsupported" or infer == "unsupported":
        return out  # rows with a system turn fail to render: the row checks report system_unsupported
    if train == infer == "absent":
        out.append(
            finding(
                "system_dropped",
                "the template renders no system turn: the system prompt is dropped"
                + (f" from {rows_phrase(with_system_rows, n)}" if with_system_rows else " (no row has one)"),
                with_system_rows,
                severity=None if with_system_rows else "info",
            )
        )
    elif train != "start" or infer != "start":
        # Single-turn rows are only affected when training renders lose the prompt altogether.
        affected = with_system_rows if train == "absent" else [
            i for i, r in zip(ids, rows) if r and r[0].get("role") == "system" and sum(m.get("role") == "user" for m in r) > 1
        ]
        out.append(
            finding(
                "system_prompt_moved",
                (f"the system prompt is {_WHERE[train]} in training and inference renders"
                 if train == infer else
                 f"the system prompt is {_WHERE[train]} in training renders but {_WHERE[infer]} at inference "
                 "(add_generation_prompt=True)")
                + (f"; affected: {rows_phrase(affected, n)}" if affected else "; no row is affected"),
                affected,
                data={"training": train, "inference": infer},
                severity=None if affected else "info",
            )
        )
    return out

