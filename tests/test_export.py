"""Atomic writers: outputs appear whole or not at all; every format reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.data.export import format_for, write_conversations
from workbench.outputs import atomic_text
from workbench.records import Conversation, Message, Source


def _convs(n: int = 3) -> list[Conversation]:
    return [
        Conversation.make([Message("user", f"q{i}"), Message("assistant", f"a{i}")], Source("in.jsonl", line=i + 1), {"k": i})
        for i in range(n)
    ]


def test_failed_write_leaves_earlier_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text(target) as fh:
        fh.write("partial")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_jsonl_roundtrip(tmp_path: Path) -> None:
    convs = _convs()
    n = write_conversations(tmp_path / "o.jsonl", convs)
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert n == 3 and [r["id"] for r in rows] == [c.id for c in convs]
    assert rows[1]["messages"][1] == {"role": "assistant", "content": "a1"}


def test_parquet_and_hf_dir_roundtrip(tmp_path: Path) -> None:
    import datasets
    import polars as pl

    convs = _convs()
    write_conversations(tmp_path / "o.parquet", convs)
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert df["id"].to_list() == [c.id for c in convs]
    assert df["messages"][0].to_list() == [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"}]

    write_conversations(tmp_path / "hfdir", convs)
    ds = datasets.load_from_disk(str(tmp_path / "hfdir"))
    assert ds[2]["messages"][0]["content"] == "q2"
    # rewriting a directory replaces it whole
    write_conversations(tmp_path / "hfdir", convs[:1])
    assert len(datasets.load_from_disk(str(tmp_path / "hfdir"))) == 1


def test_format_for() -> None:
    assert format_for("x.parquet") == "parquet"
    assert format_for("x.jsonl") == "jsonl"
    assert format_for("outdir") == "hf"
    with pytest.raises(WorkbenchError):
        format_for("x.xlsx")
    with pytest.raises(WorkbenchError):
        format_for("x.jsonl", "feather")
