"""PNG figures from plain rows (a leaf: any stage may draw with it): before/after bars, loss curves; fixed size, no metadata."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.eval.paired import Delta

DPI = 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "workbench"
    return plt


def _save(fig: Any, path: Path) -> None:
    from workbench.outputs import atomic_path

    with atomic_path(path) as tmp:
        # no Software/time chunks: the same figure gives the same bytes
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    _pyplot().close(fig)


def before_after_figure(deltas: Sequence[Delta], path: Path, title: str = "base vs base+adapter") -> Path:
    """Horizontal bars per task metric, base and base+adapter, with ±1 standard error, each bar labelled with its
    value; a score of 0 still shows as an outlined sliver, so a bar that is absent reads as "not measured"."""
    plt = _pyplot()
    labels = [f"{d.task}\n{d.metric}" for d in deltas]
    height = 0.38
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.8 * len(deltas)), dpi=DPI)
    ys = list(range(len(deltas)))
    top = max([1.0, *(max(d.before, d.after) + max(d.before_stderr or 0, d.after_stderr or 0) for d in deltas)])
    sliver = top * 0.004  # the width a zero gets, so its bar is drawn
    for offset, key, err, label, color in ((-height / 2, "before", "before_stderr", "base", "#9e9e9e"),
                                          (height / 2, "after", "after_stderr", "base+adapter", "#1f77b4")):  # fmt: skip
        values, errs = [getattr(d, key) for d in deltas], [getattr(d, err) or 0 for d in deltas]
        bars = ax.barh([y + offset for y in ys], [max(v, sliver) for v in values], height, xerr=errs,
                       label=label, color=color, edgecolor="#333333", linewidth=0.6, capsize=3)  # fmt: skip
        for bar, v, e in zip(bars, values, errs):  # the value just past the error bar, never on it
            ax.text(max(v, sliver) + e + top * 0.015, bar.get_y() + bar.get_height() / 2, f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("score (±1 standard error)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside the bars, never over them
    fig.tight_layout()
    _save(fig, path)
    return path


def loss_figure(log: Sequence[dict[str, Any]], path: Path, title: str = "loss") -> Path | None:
    """Training and eval loss against step; None when the log holds neither."""
    train = [(r["step"], r["loss"]) for r in log if isinstance(r.get("loss"), (int, float))]
    evals = [(r["step"], r["eval_loss"]) for r in log if isinstance(r.get("eval_loss"), (int, float))]
    if not train and not evals:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=DPI)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return path
