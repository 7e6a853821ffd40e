"""Per-example metrics as a polars frame, a summary of them, and matplotlib histograms."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from workbench.records import ROLES, Conversation

ProgressFn = Callable[[int, "int | None"], None]

BASE_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "source": pl.String,
    "turns": pl.Int32,
    **{f"{r}_turns": pl.Int32 for r in ROLES},
    "chars": pl.Int64,
    "prompt_chars": pl.Int64,
    "response_chars": pl.Int64,
    "last_role": pl.String,
}
TOKEN_SCHEMA: dict[str, Any] = {"tokens": pl.Int64, "trained_tokens": pl.Int64, "render_error": pl.String}


def frame(
    conversations: Iterable[Conversation],
    *,
    tokenizer: Any = None,
    max_length: int | None = None,
    on_progress: ProgressFn | None = None,
) -> pl.DataFrame:
    """One row per example: turns by role, characters, and (with a tokenizer) tokens and trained tokens.

    Token counts come from the same render and mask that `workbench mask` shows, so "trained
    tokens" means the tokens the loss will see under the default assistant-only strategy.
    """
    convs = list(conversations)
    cols: dict[str, list[Any]] = {name: [] for name in BASE_SCHEMA}
    for c in convs:
        counts = dict.fromkeys(ROLES, 0)
        prompt = response = 0
        for m in c.messages:
            counts[m.role] = counts.get(m.role, 0) + 1
            if m.role == "assistant":
                response += len(m.content)
            else:
                prompt += len(m.content)
        cols["id"].append(c.id)
        cols["source"].append(str(c.source))
        cols["turns"].append(len(c.messages))
        for r in ROLES:
            cols[f"{r}_turns"].append(counts[r])
        cols["chars"].append(prompt + response)
        cols["prompt_chars"].append(prompt)
        cols["response_chars"].append(response)
        cols["last_role"].append(c.messages[-1].role if c.messages else None)
    df = pl.DataFrame(cols, schema=BASE_SCHEMA)
    if tokenizer is None:
        return df
    tokens, trained, errors = _token_columns(convs, tokenizer, on_progress)
    df = df.with_columns(
        pl.Series("tokens", tokens, dtype=pl.Int64),
        pl.Series("trained_tokens", trained, dtype=pl.Int64),
        pl.Series("render_error", errors, dtype=pl.String),
    )
    if max_length is not None:
        df = df.with_columns((pl.col("tokens") > max_length).alias("over_max_length"))
    return df


def _token_columns(
    convs: list[Conversation], tokenizer: Any, on_progress: ProgressFn | None
) -> tuple[list[int | None], list[int | None], list[str | None]]:
    from workbench.template.batch import render_many

    tokens: list[int | None] = []
    trained: list[int | None] = []
    errors: list[str | None] = []
    total = len(convs)
    progress = (lambda done, _=None: on_progress(done, total)) if on_progress else None
    # counting needs no verification; small inputs are not worth a process pool
    for res in render_many(tokenizer, convs, check=False, workers=1 if total < 5000 else None, progress=progress):
        if res.rendered is None:
            tokens.append(None)
            trained.append(None)
            errors.append(res.error or "render failed")
        else:
            tokens.append(len(res.rendered.input_ids))
            trained.append(res.rendered.trained_count)
            errors.append(None)
    return tokens, trained, errors


def describe(values: pl.Series) -> dict[str, float | int | None]:
    """min / mean / p50 / p90 / p99 / max of a numeric column (nulls ignored)."""
    s = values.drop_nulls()
    if s.len() == 0:
        return {"count": 0, "min": None, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    q = lambda p: float(s.quantile(p, interpolation="nearest"))  # noqa: E731
    return {
        "count": int(s.len()),
        "min": int(s.min()),  # type: ignore[arg-type]
        "mean": round(float(s.mean()), 2),  # type: ignore[arg-type]
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": int(s.max()),  # type: ignore[arg-type]
    }


def histogram(values: pl.Series, bins: int = 20, *, clip: float | None = None) -> list[tuple[float, float, int]]:
    """Equal-width bins over the non-null values: (low, high, count) per bin.

    With ``clip`` (a quantile such as 0.99) the bins span min..that quantile and one last bin
    ``(q, inf)`` holds the rest, so a few very long rows do not squash the whole histogram.
    """
    s = values.drop_nulls().cast(pl.Float64)
    if s.len() == 0:
        return []
    lo, hi = float(s.min()), float(s.max())  # type: ignore[arg-type]
    overflow = 0
    if clip is not None:
        cap = float(s.quantile(clip, interpolation="higher"))  # type: ignore[arg-type]
        if cap < hi:
            overflow = int((s > cap).sum())
            s, hi = s.filter(s <= cap), cap
    if hi == lo:
        out = [(lo, hi, int(s.len()))]
    else:
        width = (hi - lo) / bins
        idx = ((s - lo) / width).floor().cast(pl.Int64).clip(0, bins - 1)
        counts = idx.value_counts().sort(idx.name)
        by_bin = dict(zip(counts[idx.name].to_list(), counts["count"].to_list(), strict=True))
        out = [(lo + i * width, lo + (i + 1) * width, int(by_bin.get(i, 0))) for i in range(bins)]
    if overflow:
        out.append((hi, math.inf, overflow))
    return out


def summary(df: pl.DataFrame, *, max_length: int | None = None) -> dict[str, Any]:
    """The figures `workbench stats` prints: sizes, distributions, role and turn counts, over-length rows."""
    out: dict[str, Any] = {
        "rows": df.height,
        "roles": {r: int(df[f"{r}_turns"].sum()) for r in ROLES},
        "rows_with_system": int((df["system_turns"] > 0).sum()),
        "turns": {str(k): int(v) for k, v in df["turns"].value_counts().sort("turns").iter_rows()},
        "last_role_not_assistant": int((df["last_role"] != "assistant").sum()),
        "columns": {name: describe(df[name]) for name in ("turns", "chars", "prompt_chars", "response_chars")},
    }
    if "tokens" in df.columns:
        out["columns"]["tokens"] = describe(df["tokens"])
        out["columns"]["trained_tokens"] = describe(df["trained_tokens"])
        total, trained = df["tokens"].sum(), df["trained_tokens"].sum()
        out["trained_share"] = round(trained / total, 4) if total else None
        out["render_errors"] = int(df["render_error"].is_not_null().sum())
        out["zero_trained_tokens"] = int((df["trained_tokens"] == 0).sum())
        if max_length is not None:
            out["max_length"] = max_length
            out["over_max_length"] = int((df["tokens"] > max_length).sum())
    return out


def plot(df: pl.DataFrame, path: str | os.PathLike[str], *, max_length: int | None = None) -> None:
    """Write a PNG with length histograms (characters; tokens and trained tokens when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.outputs import atomic_path

    panels = [("chars", "characters per example")]
    if "tokens" in df.columns:
        panels += [("tokens", "tokens per example"), ("trained_tokens", "trained tokens per example")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (col, title) in zip(axes[0], panels, strict=True):
        series = df[col].drop_nulls()
        values = series.to_list()
        # a few very long rows would squash the rest into one bar: bin up to p99, count the others
        cap = float(series.quantile(0.99, interpolation="higher")) if values else 0.0  # type: ignore[arg-type]
        shown = [v for v in values if v <= cap]
        hidden = len(values) - len(shown)
        ax.hist(shown, bins=min(50, max(5, int(math.sqrt(len(shown) or 1)))), color="#4c72b0")
        ax.set_title(title if not hidden else f"{title}\n({hidden} above {cap:.0f} not shown)", fontsize=10)
        ax.set_ylabel("examples")
        if col == "tokens" and max_length is not None:
            ax.axvline(max_length, color="#c44e52", linestyle="--", label=f"max length {max_length}")
            ax.legend()
    fig.suptitle(f"{df.height} examples")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
