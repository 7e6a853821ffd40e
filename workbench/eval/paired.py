"""Before/after maths: per-item flips with McNemar's exact test and a confidence interval for the paired difference;
per-metric deltas with a two-sample z-test for metrics that are not pass/fail per item."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.eval.results import EvalResults, Sample

# Settings that may differ between the two runs without making the comparison unfair.
RUN_SPECIFIC = ("device",)
ALPHA = 0.05


@dataclass(frozen=True)
class Delta:
    """One task metric before and after, and whether the change stands out from its standard error.

    z = (after - before) / sqrt(se_before² + se_after²), two-sided p. The test treats the runs as
    independent samples; the items are the same, so it is conservative (McNemar on flips is the
    paired view). With both standard errors 0 (or missing) there is no test: z and p are None.
    """

    task: str
    metric: str  # "exact_match,strict-match"
    before: float
    after: float
    before_stderr: float | None
    after_stderr: float | None
    higher_is_better: bool
    n: int
    z: float | None
    p: float | None

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def better(self) -> bool:
        return self.delta > 0 if self.higher_is_better else self.delta < 0

    @property
    def worse(self) -> bool:
        return self.delta < 0 if self.higher_is_better else self.delta > 0

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA


@dataclass(frozen=True)
class Flip:
    """One item whose pass/fail changed (or not): the prompt, both answers, the target."""

    doc_id: int
    prompt: str
    target: str
    before: str  # the answer the task's filter extracted
    after: str
    before_raw: str = ""  # what the model wrote
    after_raw: str = ""


@dataclass
class Flips:
    """Per-item outcomes of one binary metric (0/1 per item) on the items both runs scored, in doc order."""

    task: str
    metric: str
    paired: int
    both_pass: int
    both_fail: int
    fail_to_pass: list[Flip] = field(default_factory=list)
    pass_to_fail: list[Flip] = field(default_factory=list)

    @property
    def p(self) -> float | None:
        """McNemar's exact two-sided p on the discordant pairs; None when nothing flipped."""
        return mcnemar(len(self.fail_to_pass), len(self.pass_to_fail))

    @property
    def delta(self) -> float:
        """after - before, as a share of the paired items."""
        return (len(self.fail_to_pass) - len(self.pass_to_fail)) / self.paired if self.paired else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        """95% confidence interval for ``delta`` (Agresti-Min)."""
        return paired_ci(len(self.fail_to_pass), len(self.pass_to_fail), self.paired)

    @property
    def frozen(self) -> str | None:
        """Why the metric cannot show a change, when every item scored the same in both runs; else None."""
        if self.fail_to_pass or self.pass_to_fail:
            return None
        if self.both_pass == 0:
            return f"no item passes in either run (0 of {self.paired}): the metric never matches these models' answers, so it cannot move"
        if self.both_fail == 0:
            return f"every item passes in both runs ({self.paired} of {self.paired}): at its ceiling, it cannot move"
        return None


@dataclass
class Comparison:
    """Base vs base+adapter: the deltas, the flips, and the held-out loss."""

    model: dict[str, str]
    adapter: dict[str, Any] | None
    settings: dict[str, Any]
    deltas: list[Delta]
    flips: list[Flips]
    heldout: dict[str, Any] | None = None
    generations: list[dict[str, str]] = field(default_factory=list)

    @property
    def improved(self) -> list[Delta]:
        return [d for d in self.deltas if d.better]

    @property
    def regressed(self) -> list[Delta]:
        return [d for d in self.deltas if d.worse]


def z_test(before: float, after: float, se_before: float | None, se_after: float | None) -> tuple[float | None, float | None]:
    """Two-sample z statistic and two-sided p for after - before; (None, None) when the error is 0 or unknown."""
    if se_before is None or se_after is None:
        return None, None
    se = math.sqrt(se_before**2 + se_after**2)
    if se == 0 or not math.isfinite(se):
        return None, None
    z = (after - before) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def paired_ci(b: int, c: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Confidence interval for the difference of two paired proportions, (b - c) / n, where b items went
    fail -> pass and c pass -> fail among n: Agresti and Min (2005), a Wald interval after adding 1/2 to
    each of the four cells, which keeps its coverage near 95% for small n and for b = c = 0."""
    if n <= 0:
        return (0.0, 0.0)
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    d = (b2 - c2) / n2
    se = math.sqrt(max(0.0, (b2 + c2) - (b2 - c2) ** 2 / n2)) / n2
    return (max(-1.0, d - z * se), min(1.0, d + z * se))


def mcnemar(b: int, c: int) -> float | None:
    """Exact McNemar: two-sided binomial p of min(b, c) among b + c discordant pairs at 1/2."""
    n = b + c
    if n == 0:
        return None
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(base: EvalResults, adapted: EvalResults) -> Comparison:
    """Compare two runs of the same model under the same settings; anything else is a WorkbenchError."""
    if base.model.get("fingerprint") != adapted.model.get("fingerprint"):
        raise WorkbenchError(
            f"the results are from different models: {base.model.get('path')} vs {adapted.model.get('path')}",
            "evaluate the base and the adapter in one `workbench eval` run",
        )
    diff = sorted(k for k in set(base.settings) | set(adapted.settings)
                  if k not in RUN_SPECIFIC and base.settings.get(k) != adapted.settings.get(k))  # fmt: skip
    if diff:
        shown = "; ".join(f"{k}: {base.settings.get(k)!r} vs {adapted.settings.get(k)!r}" for k in diff)
        raise WorkbenchError(f"the two runs used different settings ({shown})", "rerun both with the same flags")
    deltas: list[Delta] = []
    flips: list[Flips] = []
    for task in sorted(set(base.tasks) & set(adapted.tasks)):
        b, a = base.tasks[task], adapted.tasks[task]
        if b.config_hash and a.config_hash and b.config_hash != a.config_hash:
            raise WorkbenchError(f"task {task} was configured differently in the two runs", "rerun both in one `workbench eval`")
        for key in sorted(set(b.metrics) & set(a.metrics)):
            mb, ma = b.metrics[key], a.metrics[key]
            z, p = z_test(mb.value, ma.value, mb.stderr, ma.stderr)
            hib = b.higher_is_better.get(key.split(",")[0], True)
            deltas.append(Delta(task, key, mb.value, ma.value, mb.stderr, ma.stderr, hib, min(b.n, a.n), z, p))
            f = item_flips(task, key, base.samples.get(task, []), adapted.samples.get(task, []))
            if f is not None:
                flips.append(f)
    heldout = None
    if base.heldout and adapted.heldout:
        heldout = {"before": base.heldout.loss, "after": adapted.heldout.loss, "perplexity_before": base.heldout.perplexity,
                   "perplexity_after": adapted.heldout.perplexity, "tokens": base.heldout.tokens, "rows": base.heldout.rows,
                   "loss_on": base.heldout.loss_on}  # fmt: skip
    after_by_id = {g.id: g for g in adapted.generations}
    gens = [{"prompt": g.prompt, "target": g.target, "before": g.output, "after": after_by_id[g.id].output}
            for g in base.generations if g.id in after_by_id]  # fmt: skip
    return Comparison(base.model, adapted.adapter, base.settings, deltas, flips, heldout, gens)


def item_flips(task: str, key: str, before: list[Sample], after: list[Sample]) -> Flips | None:
    """Pass/fail changes per item for ``key`` ("metric,filter"); None when the metric is not 0/1 per item."""
    metric, _, filt = key.partition(",")
    pick = lambda rows: {s.doc_id: s for s in rows if s.filter == filt and metric in s.metrics}
    b, a = pick(before), pick(after)
    ids = sorted(set(b) & set(a))
    if not ids or any(s.metrics[metric] not in (0.0, 1.0) for s in (*(b[i] for i in ids), *(a[i] for i in ids))):
        return None
    out = Flips(task, key, len(ids), 0, 0)
    for i in ids:
        was, now = b[i].metrics[metric] == 1.0, a[i].metrics[metric] == 1.0
        if was and now:
            out.both_pass += 1
        elif not was and not now:
            out.both_fail += 1
        else:
            (out.fail_to_pass if now else out.pass_to_fail).append(
                Flip(i, b[i].prompt, b[i].target, b[i].response, a[i].response, b[i].raw, a[i].raw))
    return out
