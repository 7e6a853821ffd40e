"""Stats: the per-example frame, its summary, histograms, the PNG and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tests.test_cli import run_cli
from workbench.data import stats
from workbench.records import Conversation, Message, Source


def _conv(*pairs: tuple[str, str]) -> Conversation:
    return Conversation.make([Message(r, c) for r, c in pairs], Source("t.jsonl", line=1))


CONVS = [
    _conv(("user", "abc"), ("assistant", "defgh")),
    _conv(("system", "s"), ("user", "12"), ("assistant", "345"), ("user", "6"), ("assistant", "7890")),
    _conv(("user", "only a question")),
]


def test_frame_counts_roles_and_characters() -> None:
    df = stats.frame(CONVS)
    assert df.height == 3
    assert df["turns"].to_list() == [2, 5, 1]
    assert df["assistant_turns"].to_list() == [2 - 1, 2, 0]
    assert df["chars"].to_list() == [8, 1 + 2 + 3 + 1 + 4, 15]
    assert df["response_chars"].to_list() == [5, 7, 0]
    assert df["last_role"].to_list() == ["assistant", "assistant", "user"]


def test_summary_and_histogram() -> None:
    df = stats.frame(CONVS)
    s = stats.summary(df)
    assert s["rows"] == 3
    assert s["roles"] == {"system": 1, "user": 4, "assistant": 3, "tool": 0}
    assert s["rows_with_system"] == 1
    assert s["last_role_not_assistant"] == 1
    assert s["columns"]["chars"]["max"] == 15 and s["columns"]["chars"]["min"] == 8
    hist = stats.histogram(df["chars"], bins=7)
    assert sum(c for _, _, c in hist) == 3
    assert hist[0][0] == 8 and hist[-1][1] == 15


def test_histogram_clip_puts_outliers_in_one_overflow_bin() -> None:
    values = pl.Series(list(range(100)) + [10_000])
    hist = stats.histogram(values, bins=10, clip=0.99)
    assert hist[-1][1] == float("inf") and hist[-1][2] == 1
    assert hist[-2][1] < 10_000
    assert sum(c for _, _, c in hist) == 101


def test_histogram_of_constant_and_empty() -> None:
    assert stats.histogram(pl.Series([4, 4, 4])) == [(4.0, 4.0, 3)]
    assert stats.histogram(pl.Series([], dtype=pl.Int64)) == []


def test_plot_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "len.png"
    stats.plot(stats.frame(CONVS), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_cli_json_on_shipped_demo(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parent.parent / "data" / "demo" / "heldout.jsonl"
    res = run_cli("stats", str(demo), "--json", "--plot", str(tmp_path / "h.png"))
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["rows"] == s["rows_read"] == 200
    assert s["roles"]["assistant"] == 200
    assert (tmp_path / "h.png").exists()


def test_token_columns_match_the_mask(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from workbench.template.mask import render_and_mask

    tok = tiny_tokenizer("chatml")
    convs = CONVS[:2]
    df = stats.frame(convs, tokenizer=tok, max_length=20)
    for conv, n, t in zip(convs, df["tokens"], df["trained_tokens"], strict=True):
        r = render_and_mask(tok, conv).rendered
        assert r is not None
        assert n == len(r.input_ids) and t == r.trained_count
    assert df["over_max_length"].to_list() == [n > 20 for n in df["tokens"]]
    s = stats.summary(df, max_length=20)
    assert s["trained_share"] == round(df["trained_tokens"].sum() / df["tokens"].sum(), 4)
