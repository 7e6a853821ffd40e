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


def before_after_figure(deltas: Sequence[Delta], path: Path) -> Path:
    """Horizontal bars per task metric, base and base+adapter, with ±1 standard error."""
    plt = _pyplot()
    labels = [f"{d.task}\n{d.metric}" for d in deltas]
    height = 0.38
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.8 * len(deltas)), dpi=DPI)
    ys = list(range(len(deltas)))
    ax.barh([y - height / 2 for y in ys], [d.before for d in deltas], height, xerr=[d.before_stderr or 0 for d in deltas],
            label="base", color="#9e9e9e", capsize=3)  # fmt: skip
    ax.barh([y + height / 2 for y in ys], [d.after for d in deltas], height, xerr=[d.after_stderr or 0 for d in deltas],
            label="base+adapter", color="#1f77b4", capsize=3)  # fmt: skip
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("score (±1 standard error)")
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
