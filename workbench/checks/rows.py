"""Per-row checks over one render+mask per row: template errors, end of turn in the labels, mask verification,
train/inference parity, prefix preservation, reasoning, template text and truncation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.checks.hits import Hits
from workbench.checks.parity import check_parity, check_prefix, parity_findings, prefix_findings, render
from workbench.checks.reasoning import Reasoning, template_text, template_text_findings
from workbench.records import Finding
from workbench.template.batch import TOO_LONG
from workbench.template.chat import Renderer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from workbench.template.mask import MaskResult

Msgs = list[dict[str, Any]]
IGNORE = -100


@dataclass(slots=True)
class RowStats:
    rows: int = 0
    rendered: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    derivations: dict[str, int] = field(default_factory=dict)

    def merge(self, other: RowStats) -> None:
        self.rows += other.rows
        self.rendered += other.rendered
        self.tokens += other.tokens
        self.trained_tokens += other.trained_tokens
        for k, v in other.derivations.items():
            self.derivations[k] = self.derivations.get(k, 0) + v


@dataclass(slots=True)
class RowAcc:
    """What the row checks gather over some rows. A batch's is made where the batch was rendered (a worker
    process), and batches merge in input order, so the result is the same on one core or many."""

    hits: Hits = field(default_factory=Hits)
    failures: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    stats: RowStats = field(default_factory=RowStats)
    trunc: dict[str, int] = field(default_factory=lambda: {"lost": 0, "trained_over": 0, "longest": 0})
    reasoning: Reasoning = field(default_factory=Reasoning)

    def merge(self, other: RowAcc) -> None:
        self.hits.merge(other.hits)
        for key, rids in other.failures.items():
            self.failures[key].extend(rids)
        self.stats.merge(other.stats)
        self.trunc["lost"] += other.trunc["lost"]
        self.trunc["trained_over"] += other.trunc["trained_over"]
        self.trunc["longest"] = max(self.trunc["longest"], other.trunc["longest"])
        self.reasoning.merge(other.reasoning)


def row_checks(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Msgs],
    ids: Sequence[str],
    *,
    strategy: str = "assistant",
    max_length: int | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    batch_size: int = 256,
) -> tuple[list[Finding], RowStats]:
    """Every per-row check over one render+mask per row. The checks run where the rows are rendered (every
    core, see ``digest_many``); their findings are the same as on one core."""
    from workbench.template import batch

    n = len(rows)
    progress = (lambda done, _total=None: on_progress(done, n)) if on_progress else None
    acc = RowAcc()
    digest = partial(digest_rows, strategy, max_length)
    for part in batch.digest_many(
        tokenizer, rows, digest, ids=ids, prepared=True, strategy=strategy, check=True, workers=workers, batch_size=batch_size, progress=progress
    ):
        acc.merge(part)
    hits, stats = acc.hits, acc.stats
    findings = _findings(hits, acc.failures, acc.trunc, stats, n, max_length)
    findings += prefix_findings(hits, n) + parity_findings(hits, n) + acc.reasoning.findings(tokenizer, n)
    return findings + template_text_findings(hits, n), stats


def digest_rows(strategy: str, max_length: int | None, ctx: Any, items: list[tuple[int, str | None, Msgs]], results: list[MaskResult]) -> RowAcc:
    """The row checks of one rendered batch (``batch.digest_many``'s digest): runs in the process that rendered it."""
    tokenizer, renderer = ctx.tokenizer, ctx.renderer
    acc = RowAcc()
    hits, stats = acc.hits, acc.stats
    stats.rows = len(items)
    parity: list[tuple[str, str, str, list[int], list[int] | None]] = []
    for (_, cid, msgs), res in zip(items, results):
        rid = str(cid)
        if res.rendered is None:
            if strategy != "all" and not any(m.get("role") == "assistant" for m in msgs):
                hits.add("no_trained_tokens", rid)
            else:
                code = "render_error" if res.error == TOO_LONG or renderer is None else _classify_failure(renderer, msgs)  # no render of a huge row
                acc.failures[(code, res.error or "")].append(rid)
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
            _check_truncation(r.input_ids, r.labels, rid, max_length, ctx.eot, hits, acc.trunc)
        check_prefix(renderer, msgs, r.text, rid, hits)
        acc.reasoning.check(msgs, r.text, rid)
        template_text(hits, res.written, rid)
        if res.prompt is not None:  # the last assistant turn's inference prompt, rendered by render-and-diff
            parity.append((rid, res.prompt, r.text, r.input_ids, res.prompt_ids))
    check_parity(tokenizer, parity, hits)
    acc.reasoning.settle(tokenizer)
    return acc


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
    from workbench.template.verification import rendered_runs, split_tail

    r = res.rendered
    assert r is not None
    eot = ctx.eot
    runs = rendered_runs(r)
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
