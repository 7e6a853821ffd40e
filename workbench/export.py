"""Atomic writers: canonical messages JSONL, Parquet, `save_to_disk` directories and side files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from workbench.errors import UsageError, WorkbenchError
from workbench.records import Conversation

FORMATS = ("jsonl", "parquet", "hf")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    An interrupted or failed write leaves any earlier file at ``path`` untouched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()
    try:
        yield tmp_path
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            target.rename(old)
            tmp_path.rename(target)
            shutil.rmtree(old)
        else:
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open a text file for writing that appears at ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        yield fh


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write dict rows as JSONL atomically; returns the number written."""
    n = 0
    with atomic_text(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The output format: given, or from the file name (.parquet → parquet, a directory name → hf)."""
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
        return fmt
    name = str(path).lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith("/") or "." not in Path(name).name:
        return "hf"
    raise WorkbenchError(
        f"cannot tell the output format from {path}",
        "name the file .jsonl or .parquet, or pass --output-format jsonl|parquet|hf",
    )


def write_conversations(
    path: str | os.PathLike[str],
    conversations: Iterable[Conversation],
    fmt: str | None = None,
) -> int:
    """Write conversations in canonical messages form (JSONL, Parquet or an HF dataset dir), atomically."""
    kind = format_for(path, fmt)
    if kind == "jsonl":
        n = 0
        with atomic_text(path) as fh:
            for conv in conversations:
                fh.write(conv.to_json())
                fh.write("\n")
                n += 1
        return n
    rows = [_flat_row(c) for c in conversations]
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=_arrow_schema())
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return len(rows)
    import datasets

    features = datasets.Features(
        {
            "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "meta": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_list(rows, features=features)
    with atomic_path(path) as tmp:
        ds.save_to_disk(str(tmp))
    return len(rows)


def _flat_row(conv: Conversation) -> dict[str, Any]:
    # meta is free-form, so columnar outputs keep it as a JSON string rather than guess a schema
    return {
        "messages": [m.to_dict() for m in conv.messages],
        "id": conv.id,
        "source": str(conv.source),
        "meta": json.dumps(conv.meta, ensure_ascii=False, sort_keys=True) if conv.meta else None,
    }


def _arrow_schema():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [("messages", pa.list_(msg)), ("id", pa.string()), ("source", pa.string()), ("meta", pa.string())]
    )
