"""The ship decision: a target metric improved beyond noise, none regressed, held-out loss did not rise, the forgetting guard held."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from workbench.eval.paired import ALPHA, Comparison, Delta, Flips

Z95 = 1.959963984540054
DEFAULT_GUARD_DROP = 0.05  # the largest fall of a guard task's score that still ships


@dataclass(frozen=True)
class Evidence:
    """One task metric before and after, tested: McNemar on per-item pass/fail, else the z-test."""

    task: str
    metric: str
    role: str  # target | guard
    n: int
    before: float
    after: float
    ci: tuple[float, float] | None  # 95% interval for after - before
    p: float | None
    test: str  # "McNemar" | "z-test" | "no test"
    flips: tuple[int, int] | None = None  # (fail -> pass, pass -> fail)
    ignored: str | None = None  # why the metric cannot move, when it cannot
    higher_is_better: bool = True

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    @property
    def gain(self) -> float:
        """The change in the better direction (positive: better)."""
        return self.delta if self.higher_is_better else -self.delta

    @property
    def improved(self) -> bool:
        return self.ignored is None and self.significant and self.gain > 0

    @property
    def regressed(self) -> bool:
        return self.ignored is None and self.significant and self.gain < 0


@dataclass
class Decision:
    """SHIP or DON'T SHIP, the reasons in plain words, and the evidence behind them."""

    ship: bool
    reasons: list[str]
    evidence: list[Evidence] = field(default_factory=list)
    guard_drop: float = DEFAULT_GUARD_DROP
    notes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return ("**SHIP**" if self.ship else "**DON'T SHIP**") + ": " + "; ".join(self.reasons) + "."


def evidence(d: Delta, flips: Flips | None, role: str) -> Evidence:
    """A delta as evidence: the paired test when the metric is pass/fail per item, else the z-test."""
    if flips is not None:
        b, c = len(flips.fail_to_pass), len(flips.pass_to_fail)
        return Evidence(d.task, d.metric, role, flips.paired, d.before, d.after, flips.ci, flips.p, "McNemar", (b, c), flips.frozen)
    ci = None
    if d.before_stderr is not None and d.after_stderr is not None:
        half = Z95 * (d.before_stderr**2 + d.after_stderr**2) ** 0.5
        ci = (d.delta - half, d.delta + half)
    return Evidence(d.task, d.metric, role, d.n, d.before, d.after, ci, d.p, "z-test" if d.p is not None else "no test",
                    higher_is_better=d.higher_is_better)  # fmt: skip


def decide(comp: Comparison, *, guard_tasks: Sequence[str] = (), guard_drop: float = DEFAULT_GUARD_DROP) -> Decision:
    """SHIP when a target metric rose beyond noise (p < 0.05), no target metric fell beyond noise, held-out loss did
    not rise, and no guard task fell by more than ``guard_drop`` beyond noise. A metric that cannot move (the same
    outcome for every item in both runs) is left out, with the reason."""
    by_key = {(f.task, f.metric): f for f in comp.flips}
    ev = [evidence(d, by_key.get((d.task, d.metric)), "guard" if d.task in guard_tasks else "target") for d in comp.deltas]
    targets, guards = [e for e in ev if e.role == "target"], [e for e in ev if e.role == "guard"]
    live = [e for e in targets if e.ignored is None]
    reasons: list[str] = []
    notes = [f"{e.task} {e.metric} is left out: {e.ignored}" for e in ev if e.ignored]
    up, down = [e for e in live if e.improved], [e for e in live if e.regressed]
    failed = [e for e in guards if e.ignored is None and e.gain < -guard_drop and e.significant]
    held_rose = bool(comp.heldout and comp.heldout["after"] > comp.heldout["before"])
    if down:
        reasons += [f"{_say(e)} fell beyond noise" for e in down]
    if failed:
        reasons += [f"forgetting guard {_say(e)} fell by more than {guard_drop:.2f}" for e in failed]
    if held_rose:
        h = comp.heldout or {}
        reasons.append(f"held-out loss rose ({h['before']:.3f} → {h['after']:.3f})")
    if not live:
        reasons.append("no target metric can show a change" if targets else "no target task was evaluated")
    elif not up:
        reasons.append("no target metric rose beyond noise (" + "; ".join(_say(e) for e in live) + ")")
    ship = not reasons
    if ship:
        reasons += [f"{_say(e)} rose beyond noise" for e in up]
        if comp.heldout:
            h = comp.heldout
            reasons.append(f"held-out loss fell {h['before']:.3f} → {h['after']:.3f}")
        if guards:
            reasons += [_guard_held(e, guard_drop) for e in guards if e.ignored is None]
        else:
            reasons.append("no forgetting guard was evaluated (eval.guard_tasks)")
    return Decision(ship, reasons, ev, guard_drop, notes)


def _guard_held(e: Evidence, guard_drop: float) -> str:
    """Why a guard that did not fail held: its fall was within the allowed drop, or larger but not beyond noise."""
    if e.gain >= -guard_drop:
        return f"forgetting guard {_say(e)} within the allowed drop of {guard_drop:.2f}"
    return f"forgetting guard {_say(e)} fell by more than {guard_drop:.2f} but not beyond noise"


def _say(e: Evidence) -> str:
    ci = f", 95% CI {e.ci[0]:+.3f} to {e.ci[1]:+.3f}" if e.ci else ""
    p = "" if e.p is None else f", {e.test} p {'< 0.001' if e.p < 0.001 else f'= {e.p:.3f}'}"
    return f"{e.task} {e.metric} {e.before:.3f} → {e.after:.3f} ({e.delta:+.3f}{ci}{p})"
