"""Conversation exports: canonical messages JSONL, Parquet and `save_to_disk` directories, written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, WorkbenchError
from workbench.outputs import atomic_path, atomic_text
from workbench.records import Conversation

FORMATS = ("jsonl", "parquet", "hf")


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
