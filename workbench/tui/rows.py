"""Where the app's rows come from: one JSONL file through the lazy RowIndex, anything else through ingest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from workbench.records import Conversation, Reject, Source

StopFn = Callable[[], bool]
ProgressFn = Callable[[int, "int | None"], None]
ROWS_EVERY = 2048  # rows between progress calls while reading, so the table fills as rows arrive


class Rows(Protocol):
    """Rows by position: a Conversation, or the Reject ingest would write for that row."""

    name: str
    complete: bool

    def __len__(self) -> int: ...
    def item(self, i: int) -> Conversation | Reject: ...
    def parse(self, i: int) -> Conversation | Reject: ...
    def source(self, i: int) -> Source: ...
    def search(self, text: str, *, stop: StopFn | None = None) -> np.ndarray: ...
    def search_chunks(self, text: str, *, stop: StopFn | None = None) -> Iterator[tuple[np.ndarray, int]]: ...
    def own_id(self, i: int) -> str | None: ...


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
        """Read every row; ``on_progress(bytes done, bytes total)`` also every few thousand rows, so rows show as they come."""
        from workbench import data as wd

        paths, format, mapping = self._args
        seen: list[int | None] = [0, None]

        def progress(done: int, total: int | None = None) -> None:
            seen[0], seen[1] = done, total
            if on_progress:
                on_progress(done, total)

        for n, item in enumerate(wd.stream(paths, format=format, mapping=mapping, on_progress=progress), 1):
            self.items.append(item)
            if n % ROWS_EVERY == 0:
                if on_progress:
                    on_progress(seen[0] or 0, seen[1])
                if stop is not None and stop():
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

    def own_id(self, i: int) -> str | None:
        return None  # ingest keeps only the messages of a row

    def search(self, text: str, *, stop: StopFn | None = None) -> np.ndarray:
        parts = [hits for hits, _ in self.search_chunks(text, stop=stop)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def search_chunks(self, text: str, *, stop: StopFn | None = None, chunk: int = 4096) -> Iterator[tuple[np.ndarray, int]]:
        """``(hits, rows done)`` per ``chunk`` rows: the text of every turn (or a reject's raw row), case-folded."""
        needle = text.casefold()
        items = self.items
        for a in range(0, len(items), chunk):
            if stop is not None and stop():
                return
            hits = [i for i in range(a, min(a + chunk, len(items)))
                    if needle in (items[i].text() if isinstance(items[i], Conversation) else (items[i].raw or "")).casefold()]  # type: ignore[union-attr]  # fmt: skip
            yield np.asarray(hits, dtype=np.int64), min(a + chunk, len(items))


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
