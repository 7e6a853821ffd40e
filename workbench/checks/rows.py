"""Per-row checks over one render+mask per row: template errors, end of turn in the labels, mask verification,
train/inference parity, prefix preservation and truncation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import finding, rows_phrase
from workbench.records import Finding
from workbench.template.chat import Renderer, TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from workbench.template.mask import MaskResult

Msgs = list[dict[str, Any]]
IGNORE = -100
DETAILS = 20  # per code, the examples whose details (diffs, problems) go into Finding.data
PARITY_BATCH = 256


@dataclass(slots=True)
class RowStats:
    rows: int = 0
    rendered: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    derivations: dict[str, int] = field(default_factory=dict)


class _Hits:
    """Example ids and a few details per code."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = defaultdict(list)
        self.details: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, code: str, rid: str, **detail: Any) -> None:
        self.ids[code].append(rid)
        if detail and len(self.details[code]) < DETAILS:
            self.details[code].append({"id": rid, **detail})


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
    renderer = Renderer(tokenizer)
    eot = set(mask.end_of_turn_ids(tokenizer))
    hits = _Hits()
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
        _check_labels(tokenizer, msgs, rid, res, eot, strategy, hits)
        if max_length is not None:
            _check_truncation(r.input_ids, r.labels, rid, max_length, eot, hits, trunc)
        _check_prefix(renderer, msgs, r.text, rid, hits)
        last = max((k for k, m in enumerate(msgs) if m.get("role") == "assistant"), default=0)
        if last > 0:
            prompt = _render(renderer, msgs[:last], gen=True)
            if prompt is not None:
                parity.append((rid, prompt, r.text, r.input_ids))
        if len(parity) >= PARITY_BATCH:
            _check_parity(tokenizer, parity, hits)
            parity = []
    _check_parity(tokenizer, parity, hits)
    return _findings(hits, failures, trunc, stats, n, max_length), stats


# --- one row ----------------------------------------------------------------------------------


def _render(renderer: Renderer, msgs: Msgs, gen: bool = False) -> str | None:
    try:
        return renderer.render(msgs, add_generation_prompt=gen)[0]
    except TemplateError:
        return None


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
        if rest and _alternates(rest) and _render(renderer, rest) is not None:
            return "system_unsupported"
    return "render_error" if _alternates(msgs) else "roles_not_alternating"


def _check_labels(
    tokenizer: PreTrainedTokenizerBase, msgs: Msgs, rid: str, res: MaskResult, eot: set[int], strategy: str, hits: _Hits
) -> None:
    from workbench.template import mask

    r = res.rendered
    assert r is not None
    runs = mask.trained_runs(r.labels)
    if not runs:
        hits.add("no_trained_tokens", rid)
    if strategy == "all":
        if not any(t in eot for t in r.input_ids):
            hits.add("eot_not_trained", rid, ends_with=None)
    else:
        ends = [r.input_ids[b - 1] for a, b in runs if r.input_ids[b - 1] not in eot]
        if ends or (not runs and any(m.get("role") == "assistant" for m in msgs)):
            hits.add("eot_not_trained", rid, ends_with=tokenizer.convert_ids_to_tokens(ends))
    problems = res.problems
    if res.agree is False:
        hits.add("mask_disagreement", rid, problems=[p for p in problems if "disagree" in p])
        # The row's problems mix both derivations; verify the mask actually used on its own.
        problems = mask.verify(tokenizer, msgs, r, strategy=strategy)
    other = [p for p in problems if "end-of-turn" not in p]  # eot_not_trained reports those
    if other:
        hits.add("mask_unverified", rid, problems=other)


def _check_truncation(
    ids: list[int], labels: list[int], rid: str, max_length: int, eot: set[int], hits: _Hits, trunc: dict[str, int]
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


def _divergence(a: Sequence[Any], b: Sequence[Any]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def _check_prefix(renderer: Renderer, msgs: Msgs, full: str, rid: str, hits: _Hits) -> None:
    """Each earlier assistant turn, rendered as the conversation's end, must be a prefix of the whole render."""
    turns = [k for k, m in enumerate(msgs) if m.get("role") == "assistant"]
    for k in turns[:-1]:
        text = _render(renderer, msgs[: k + 1])
        if text is None or full.startswith(text):
            continue
        at = _divergence(text, full)
        hits.add(
            "not_prefix_preserving",
            rid,
            message=k,
            at_char=at,
            turn_render=text[max(0, at - 30) : at + 60],
            full_render=full[max(0, at - 30) : at + 60],
        )
        return


def _encode_many(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Ids only; the Rust backend's fast path skips the offsets and masks the full call computes."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)
    if fast is not None:
        return [e.ids for e in fast(texts, add_special_tokens=False)]
    return list(tokenizer(texts, add_special_tokens=False)["input_ids"])


def _check_parity(tokenizer: PreTrainedTokenizerBase, batch: list[tuple[str, str, str, list[int]]], hits: _Hits) -> None:
    """The inference prompt (add_generation_prompt=True) must tokenize to a prefix of the training render."""
    if not batch:
        return
    prompt_ids = _encode_many(tokenizer, [p for _, p, _, _ in batch])
    for (rid, prompt, full, ids), p in zip(batch, prompt_ids):
        if list(ids[: len(p)]) == list(p):
            continue
        if full.startswith(prompt):
            k = _divergence(list(p), list(ids))
            hits.add(
                "generation_prompt_mismatch",
                rid,
                kind="token boundary",
                at_token=k,
                inference=tokenizer.convert_ids_to_tokens(list(p[k : k + 4])),
                training=tokenizer.convert_ids_to_tokens(list(ids[k : k + 4])),
            )
        else:
            at = _divergence(prompt, full)
            hits.add(
                "generation_prompt_mismatch",
                rid,
                kind="text",
                at_char=at,
                inference=prompt[max(0, at - 30) : at + 60],
                training=full[max(0, at - 30) : at + 60],
            )


# --- findings ---------------------------------------------------------------------------------

_MESSAGES = {
    "no_trained_tokens": "{rows} have zero trained tokens",
    "eot_not_trained": "{rows} have an assistant turn whose end-of-turn token is not trained",
    "mask_unverified": "{rows} have trained tokens that are not exactly the assistant contents plus end-of-turn",
    "mask_disagreement": "{rows}: the {{% generation %}} tags and the template-agnostic derivation train different tokens",
    "generation_prompt_mismatch": "{rows}: the inference prompt (add_generation_prompt=True) is not a token prefix of the training render",
    "not_prefix_preserving": "{rows}: the template renders an earlier turn differently once later turns follow",
    "trailing_turn": "{rows} end with a user or tool turn after the last assistant reply: those turns train nothing",
}


def _findings(
    hits: _Hits,
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
            data = {"examples": hits.details[code]} if hits.details.get(code) else {}
            out.append(finding(code, template.format(rows=rows_phrase(rids, n)), rids, data=data))
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
