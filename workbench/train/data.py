"""Training data as the trainer sees it: ingested, split, limited, rendered and masked; drops counted by reason."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.records import Conversation, Rendered
from workbench.recipe import Recipe

PROBE = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]


@dataclass
class Prepared:
    """Training data as the trainer will see it: rendered, masked, verified; and what was dropped, by reason."""

    train: list[Rendered]
    eval: list[Rendered] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_rows: list[dict[str, Any]] = field(default_factory=list)  # {id, source, reason, detail}
    rows_in: int = 0


def prepare(
    recipe: Recipe,
    tokenizer: Any,
    conversations: Sequence[Conversation] | None = None,
    heldout: Sequence[Conversation] | None = None,
) -> Prepared:
    """Ingest (unless given conversations), split off held-out data, apply the limit, render and mask.

    Rows whose template fails, whose mask does not verify, that train no token, or that are longer
    than model.max_length are dropped and counted by reason (never truncated into a wrong example).
    """
    d = recipe.data
    dropped_rows: list[dict[str, Any]] = []
    if conversations is None:
        if not d.sources:
            raise WorkbenchError("the recipe names no training data", "set data.sources: [file.jsonl, ...]")
        from workbench.data import ingest

        got = ingest.load(d.sources, format=d.format, mapping=d.mapping or None)
        conversations = got.conversations
        dropped_rows += [{"id": None, "source": r.where(), "reason": f"reject:{r.reason}", "detail": r.detail} for r in got.rejects]
    convs = list(conversations)
    rows_in = len(convs) + len(dropped_rows)
    if heldout is None and isinstance(d.heldout, str):
        from workbench.data import ingest

        heldout = ingest.load([d.heldout], format=d.format, mapping=d.mapping or None).conversations
    fraction = d.heldout if heldout is None and isinstance(d.heldout, float) else None
    convs, split_off, over = limit_and_split(convs, limit=d.limit, heldout=fraction, seed=d.seed)
    if fraction is not None:
        heldout = split_off
    dropped_rows += [{"id": c.id, "source": str(c.source), "reason": "over_limit", "detail": f"data.limit={d.limit}"} for c in over]
    train_rows = _mask(recipe, tokenizer, convs, dropped_rows)
    held_dropped: list[dict[str, Any]] = []
    eval_rows = _mask(recipe, tokenizer, list(heldout or []), held_dropped)
    for row in held_dropped:  # held-out rows that cannot be scored are accounted for too
        row["reason"] = f"heldout:{row['reason']}"
    dropped_rows += held_dropped
    if not isinstance(d.heldout, float):
        rows_in += len(heldout or [])  # a separate held-out file: its rows come in too
    # in = trained + held out + dropped (by reason), whichever way the held-out rows arrived
    if not train_rows:
        reasons = Counter(r["reason"] for r in dropped_rows)
        raise WorkbenchError("no training example is left", f"dropped: {dict(reasons)}" if reasons else "data.sources is empty")
    return Prepared(train_rows, eval_rows, dict(sorted(Counter(r["reason"] for r in dropped_rows).items())), dropped_rows, rows_in)


def limit_and_split(convs: Sequence[Conversation], *, limit: int | None, heldout: float | None, seed: int
                    ) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:  # fmt: skip
    """(train, held out, over the limit): a seeded shuffle, the first ``limit`` rows kept, then the ``heldout``
    fraction split off *those* rows, so `limit: 10000, heldout: 0.01` holds out 100 rows, not 1% of the source."""
    rows = list(convs)
    if limit is None and heldout is None:
        return rows, [], []
    random.Random(seed).shuffle(rows)
    over: list[Conversation] = []
    if limit is not None and len(rows) > limit:
        rows, over = rows[:limit], rows[limit:]
    if heldout is None:
        return rows, [], over
    n = max(1, round(len(rows) * heldout))
    return rows[n:], rows[:n], over


def _mask(recipe: Recipe, tokenizer: Any, convs: list[Conversation], dropped: list[dict[str, Any]]) -> list[Rendered]:
    from workbench.template.batch import render_many

    out: list[Rendered] = []
    max_len = recipe.model.max_length
    results = render_many(
        tokenizer, convs, strategy=recipe.mask.strategy, train_eot=recipe.mask.train_eot, workers=1 if len(convs) < 5000 else None
    )
    for conv, res in zip(convs, results):
        why = None
        if res.error or res.rendered is None:
            why = ("render_error", res.error or "no render")
        elif res.problems:
            why = ("mask_problem", res.problems[0])
        elif len(res.rendered.input_ids) > max_len:
            why = ("too_long", f"{len(res.rendered.input_ids)} tokens > model.max_length={max_len}")
        elif res.rendered.trained_count == 0:
            why = ("no_trained_tokens", "nothing to learn from")
        if why:
            dropped.append({"id": conv.id, "source": str(conv.source), "reason": why[0], "detail": why[1]})
        else:
            out.append(res.rendered)
    return out


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes an assistant turn in this template: the last end-of-turn token the mask trains in a
    probe (generation tags may train a "\n" or an EOS after it; Phi-3's train <|end|>\n<|endoftext|>)."""
    from workbench.template.mask import end_of_turn_ids, render_and_mask

    res = render_and_mask(tokenizer, PROBE, strategy="assistant", train_eot=True, check=False)
    if res.rendered is None or not res.rendered.assistant_spans:
        return None
    a, b = res.rendered.assistant_spans[-1]
    ids = res.rendered.input_ids
    eot = set(end_of_turn_ids(tokenizer))
    # the first end-of-turn token of the region's closing stretch: what the answer itself ends with
    at = next((i for i in range(a, b) if ids[i] in eot and all(j in eot or not tokenizer.decode([j]).strip() for j in ids[i:b])), None)
    return ids[at] if at is not None else (ids[b - 1] if b > a else None)


def as_dataset(rows: Sequence[Rendered]) -> Any:
    """A pre-tokenised datasets.Dataset (input_ids, labels): SFTTrainer uses these columns as they are."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
