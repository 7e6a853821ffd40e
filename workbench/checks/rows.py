"""Per-row checks over one render+mask per row: template errors, end of turn in the labels, mask verification,
train/inference parity, prefix preservation, reasoning, template text and truncation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.hits import Hits
from workbench.checks.parity import check_parity, check_prefix, parity_findings, prefix_findings, render
from workbench.checks.reasoning import Reasoning, template_text, template_text_findings
from workbench.records import Finding
from workbench.template.chat import Renderer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from workbench.template.mask import MaskResult

Msgs = list[dict[str, Any]]
IGNORE = -100
PARITY_BATCH = 256


@dataclass(slots=True)
class RowStats:
    rows: int = 0
    rendered: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    derivations: dict[str, int] = field(default_factory=dict)


def row_checks(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Msgs],
    ids: Sequence[str],
    *,
    strategy: str = "assistant",
    max_length: int | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> tuple[list[Finding], RowStats]:
    from workbench.template import batch, mask

    n = len(rows)
    ctx = mask._context(tokenizer)
    renderer = ctx.renderer
    hits = Hits()
    reasoning = Reasoning()
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    stats = RowStats(rows=n)
    trunc = {"lost": 0, "trained_over": 0, "longest": 0}
    parity: list[tuple[str, str, str, list[int]]] = []
    progress = (lambda done, _total=None: on_progress(done, n)) if on_progress else None

    for res in batch.render_many(tokenizer, rows, strategy=strategy, check=True, workers=workers, progress=progress):
        i, msgs = res.index, rows[res.index]
        rid = ids[i]
        if res.rendered is None:
            if strategy != "all" and not any(m.get("role") == "assistant" for m in msgs):
                hits.add("no_trained_tokens", rid)
            else:
                code = "render_error" if res.error == batch.TOO_LONG else _classify_failure(renderer, msgs)  # no render of a huge row
                failures[(code, res.error or "")].append(rid)
            continue
        if msgs and msgs[-1].get("role") != "assistant" and any(m.get("role") == "assistant" for m in msgs):
            hits.add("trailing_turn", rid, last_role=msgs[-1].get("role"))
        r = res.rendered
        stats.rendered += 1
        stats.tokens += len(r.input_ids)
        stats.trained_tokens += r.trained_count
        stats.derivations[res.derivation] = stats.derivations.get(res.derivation, 0) + 1
        _check_labels(tokenizer, ctx, msgs, rid, res, strategy, hits)
        if max_length is not None:
            _check_truncation(r.input_ids, r.labels, rid, max_length, ctx.eot, hits, trunc)
        check_prefix(renderer, msgs, r.text, rid, hits)
        reasoning.check(msgs, r.text, rid)
        template_text(hits, res.written, rid)
        last = max((k for k, m in enumerate(msgs) if m.get("role") == "assistant"), default=0)
        if last > 0:
            prompt = render(renderer, msgs[:last], gen=True)
            if prompt is not None:
                parity.append((rid, prompt, r.text, r.input_ids))
        if len(parity) >= PARITY_BATCH:
            check_parity(tokenizer, parity, hits)
            parity = []
    check_parity(tokenizer, parity, hits)
    findings = _findings(hits, failures, trunc, stats, n, max_length)
    findings += prefix_findings(hits, n) + parity_findings(hits, n) + reasoning.findings(tokenizer, n)
    return findings + template_text_findings(hits, n), stats


# --- one row ----------------------------------------------------------------------------------


def _alternates(msgs: Msgs) -> bool:
    """User first, then user/assistant alternating; one optional leading system turn; tool turns skipped."""
    roles = [m.get("role") for m in msgs]
    if roles and roles[0] == "system":
        roles = roles[1:]
    roles = [r for r in roles if r != "tool"]
    if not roles or roles[0] != "user":
        return False
    return all(r == ("user" if k % 2 == 0 else "assistant") for k, r in enumerate(roles))


def _classify_failure(renderer: Renderer, msgs: Msgs) -> str:
    if any(m.get("role") == "system" for m in msgs):
        rest = [m for m in msgs if m.get("role") != "system"]
        if rest and _alternates(rest) and render(renderer, rest) is not None:
            return "system_unsupported"
    return "render_error" if _alternates(msgs) else "roles_not_alternating"


def _check_labels(
    tokenizer: PreTrainedTokenizerBase, ctx: Any, msgs: Msgs, rid: str, res: MaskResult, strategy: str, hits: Hits
) -> None:
    from workbench.template import mask
    from workbench.template.verification import split_tail

    r = res.rendered
    assert r is not None
    eot = ctx.eot
    runs = mask.trained_runs(r.labels)
    if not runs:
        hits.add("no_trained_tokens", rid)
    if strategy == "all":
        if not any(t in eot for t in r.input_ids):
            hits.add("eot_not_trained", rid, ends_with=None)
    else:
        # a region ends its turn when its closing stretch holds an end-of-turn token (tags may add "\n" after it)
        ends = [r.input_ids[b - 1] for a, b in runs if split_tail(r.input_ids, a, b, eot, ctx.is_blank)[1] is None]
        if ends or (not runs and any(m.get("role") == "assistant" for m in msgs)):
            hits.add("eot_not_trained", rid, ends_with=tokenizer.convert_ids_to_tokens(ends))
    if res.agree is False:
        hits.add("mask_disagreement", rid, problems=[res.disagreement])
    other = [p for p in res.problems if "end-of-turn" not in p]  # eot_not_trained reports those
    if other:
        hits.add("mask_unverified", rid, problems=other)


def _check_truncation(
    ids: list[int], labels: list[int], rid: str, max_length: int, eot: set[int], hits: Hits, trunc: dict[str, int]
) -> None:
    if len(ids) <= max_length:
        return
    trained = [k for k, x in enumerate(labels) if x != IGNORE]
    lost = sum(1 for k in trained if k >= max_length)
    trunc["lost"] += lost
    trunc["trained_over"] += len(trained)
    trunc["longest"] = max(trunc["longest"], len(ids))
    hits.add("over_max_length", rid, tokens=len(ids), trained_lost=lost)
    if trained and lost == len(trained):
        hits.add("truncated_to_nothing", rid, tokens=len(ids), first_trained=trained[0])
        return
    last_eot = max((k for k in trained if ids[k] in eot), default=None)
    if last_eot is not None and last_eot >= max_length:
        hits.add("truncation_cuts_eot", rid, tokens=len(ids), end_of_turn_at=last_eot)


# --- findings ---------------------------------------------------------------------------------

_MESSAGES = {
    "no_trained_tokens": "{rows} have zero trained tokens",
    "eot_not_trained": "{rows} have an assistant turn whose end-of-turn token is not trained{detail}",
    "mask_unverified": "{rows} have a trained region that is not exactly one assistant turn{detail}",
    "mask_disagreement": "{rows}: the {{% generation %}} tags and the template-agnostic derivation train different tokens{detail}",
    "trailing_turn": "{rows} end with a user or tool turn after the last assistant reply: those turns train nothing",
}


def _detail(code: str, examples: list[dict[str, Any]]) -> str:
    """The first example's fact, in words, for the finding's message."""
    if not examples:
        return ""
    first = examples[0]
    if code == "eot_not_trained" and first.get("ends_with"):
        return f" (e.g. a trained region ends with {first['ends_with'][0]!r})"
    if code in ("mask_unverified", "mask_disagreement") and first.get("problems"):
        text = str(first["problems"][0])
        if code == "mask_disagreement":
            text = text.split(": ", 1)[-1].split(". Tags train", 1)[0]
        return f": {text}" if code == "mask_disagreement" else f" (e.g. {text})"
    return ""


def _findings(
    hits: Hits,
    failures: dict[tuple[str, str], list[str]],
    trunc: dict[str, int],
    stats: RowStats,
    n: int,
    max_length: int | None,
) -> list[Finding]:
    out: list[Finding] = []
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for (code, error), rids in failures.items():
        grouped[code][error] = rids
    for code in ("system_unsupported", "roles_not_alternating"):
        if code in grouped:
            errors = grouped[code]
            rids = [r for v in errors.values() for r in v]
            out.append(finding(code, f"{rows_phrase(rids, n)} fail to render: {'; '.join(sorted(errors))}", rids,
                               data={"errors": {e: len(v) for e, v in sorted(errors.items())}}))  # fmt: skip
    for error, rids in sorted(grouped.get("render_error", {}).items()):
        out.append(finding("render_error", f"{rows_phrase(rids, n)} fail to render: {error}", rids, data={"error": error}))
    for code, template in _MESSAGES.items():
        rids = hits.ids.get(code)
        if rids:
            examples = hits.details.get(code) or []
            data = {"examples": examples} if examples else {}
            message = template.format(rows=rows_phrase(rids, n), detail=_detail(code, examples))
            hint = None
            if code == "mask_disagreement" and "render-and-diff derivation is off" in message:
                hint = "the tags are right and are used; the template rewrites the turn, so the template-agnostic derivation cannot follow it"
            out.append(finding(code, message, rids, data=data, hint=hint))
    if max_length is not None and hits.ids.get("over_max_length"):
        rids = hits.ids["over_max_length"]
        lost, over = trunc["lost"], trunc["trained_over"]
        share = lost / over if over else 0.0
        overall = lost / stats.trained_tokens if stats.trained_tokens else 0.0
        data = {
            "max_length": max_length,
            "trained_lost": lost,
            "trained_in_long_rows": over,
            "share_lost": share,
            "share_of_all_trained": overall,
            "examples": hits.details["over_max_length"],
        }
        message = (
            f"{rows_phrase(rids, n)} are longer than {max_length} tokens (longest {trunc['longest']}); "
            f"{lost} of their {over} trained tokens ({share:.1%}) are cut, {overall:.1%} of all trained tokens"
        )
        out.append(finding("over_max_length", message, rids, data=data))
        for code, what in (
            ("truncation_cuts_eot", "lose their final end-of-turn token"),
            ("truncated_to_nothing", "are left with zero trained tokens"),
        ):
            if hits.ids.get(code):
                rids = hits.ids[code]
                out.append(finding(code, f"at --max-length {max_length}, {rows_phrase(rids, n)} {what}", rids,
                                   data={"examples": hits.details[code]}))  # fmt: skip
    return out
