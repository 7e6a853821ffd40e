"""Where the app's rows come from: one JSONL file through the lazy RowIndex, anything else through ingest."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from workbench.records import Conversation, Reject, Source

StopFn = Callable[[], bool]
ProgressFn = Callable[[int, "int | None"], None]


class Rows(Protocol):
    """Rows by position: a Conversation, or the Reject ingest would write for that row."""

    name: str
    complete: bool

    def __len__(self) -> int: ...
    def item(self, i: int) -> Conversation | Reject: ...
    def parse(self, i: int) -> Conversation | Reject: ...
    def source(self, i: int) -> Source: ...
    def search(self, text: str, *, stop: StopFn | None = None) -> np.ndarray: ...


class MemoryRows:
    """Rows read whole by ``ingest.stream`` (CSV, Parquet, JSON, several files, HF dirs)."""

    def __init__(self, paths: Sequence[str], *, format: str | None = None, mapping: Mapping[str, str] | None = None) -> None:
        from workbench import data as wd

        self.name = ", ".join(paths)
        self.items: list[Conversation | Reject] = []
        self.complete = False
        self._args = (list(paths), format, dict(mapping or {}))
        wd.stream(*self._args[:1], format=format, mapping=mapping)  # checks the inputs now, before any screen

    def load(self, on_progress: ProgressFn | None = None, stop: StopFn | None = None) -> None:
        from workbench import data as wd

        paths, format, mapping = self._args
        for n, item in enumerate(wd.stream(paths, format=format, mapping=mapping, on_progress=on_progress), 1):
            self.items.append(item)
            if stop is not None and n % 4096 == 0 and stop():
                return
        self.complete = True

    def __len__(self) -> int:
        return len(self.items)

    def item(self, i: int) -> Conversation | Reject:
        return self.items[i]

    parse = item

    def source(self, i: int) -> Source:
        it = self.items[i]
        if isinstance(it, Conversation):
            return it.source
        return Source(it.file, it.line, it.row)

    def search(self, text: str, *, stop: StopFn | None = None) -> np.ndarray:
        needle = text.casefold()
        hits = []
        for i, it in enumerate(self.items):
            hay = it.text() if isinstance(it, Conversation) else (it.raw or "")
            if needle in hay.casefold():
                hits.append(i)
            if stop is not None and i % 4096 == 0 and stop():
                break
        return np.asarray(hits, dtype=np.int64)


def open_rows(paths: Sequence[str | os.PathLike[str]], *, format: str | None = None,
              mapping: Mapping[str, str] | None = None) -> Rows:  # fmt: skip
    """A lazy index for one JSONL file; an in-memory reader for everything else. Raises WorkbenchError."""
    from workbench.data import RowIndex

    names = [os.fspath(p) for p in paths]
    if len(names) == 1 and Path(names[0]).suffix.lower() in (".jsonl", ".ndjson", ".jsonlines"):
        from workbench.data import stream

        stream(names, format=format, mapping=mapping)  # the same checks and messages ingest gives
        return RowIndex(names[0], format=format, mapping=mapping)  # type: ignore[return-value]
    return MemoryRows(names, format=format, mapping=mapping)
