"""Read JSONL, JSON, CSV, Parquet, `save_to_disk` dirs and `load_dataset` names into Conversations and Rejects."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Union

from workbench.errors import UsageError, WorkbenchError
from workbench.data.export import format_for, write_conversations
from workbench.outputs import atomic_text, guard
from workbench.data.formats import FORMATS, SCHEMAS, RowError, detect, remap
from workbench.data.formats import row_meta as with_tools
from workbench.data.content import Linter
from workbench.data.readers import DEEP, DETECT_ROWS, FIELDS, Item, _parts, _resolve
from workbench.records import Conversation, Finding, Message, Reject, Source

__all__ = ["FORMATS", "IngestReport", "IngestStream", "Ingested", "convert", "ingest_to", "load", "no_usable_rows", "require_usable", "stream"]

PathLike = Union[str, "os.PathLike[str]"]
ProgressFn = Callable[[int, "int | None"], None]


# --- the stream --------------------------------------------------------------------------------


class IngestStream(Iterator[Union[Conversation, Reject]]):
    """Conversations and Rejects from ``paths``, in file order; counts and detected formats as it goes.

    Inputs are checked when the stream is made, so a missing or unreadable file fails before any row.
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        *,
        format: str | None = None,
        mapping: Mapping[str, str] | None = None,
        on_progress: ProgressFn | None = None,
    ) -> None:
        if format == "auto":
            format = None
        if format is not None and format not in FORMATS:
            raise UsageError(f"--format {format!r} is not a known schema", f"use one of: auto, {', '.join(FORMATS)}")
        self.mapping = dict(mapping or {})
        for key, column in self.mapping.items():
            if key not in FIELDS:
                raise UsageError(f"--map {key}={column}: {key!r} is not a field", f"fields: {', '.join(sorted(FIELDS))}")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.inputs = [_resolve(p) for p in paths]
        if not self.inputs:
            raise UsageError("no input files given", "pass one or more files, directories or hf:NAME")
        self.format = format
        self.files: list[str] = []
        self.formats: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = {}  # per file: read, written, rejected
        self.rows_read = 0
        self._on_progress = on_progress
        self._it = self._run()

    def __next__(self) -> Conversation | Reject:
        return next(self._it)

    def _run(self) -> Iterator[Conversation | Reject]:
        known = [s.size for s in self.inputs]
        total = None if None in known else sum(s.size or 0 for s in self.inputs)
        progress = self._on_progress or (lambda done, total=None: None)
        base = 0
        progress(0, total)
        for src in self.inputs:
            def report(done: int, base: int = base) -> None:
                progress(base + done, total)

            for name, items in _parts(src, report, self.mapping):
                yield from self._convert(name, items)
            base += src.size or 0
            progress(base, total)

    def _convert(self, name: str, items: Iterator[Item]) -> Iterator[Conversation | Reject]:
        self.files.append(name)
        mapping = self.mapping
        fmt, head = self.format, []
        if fmt is None:
            sample: list[dict[str, Any]] = []
            for item in items:
                head.append(item)
                if type(item) is tuple and isinstance(item[2], dict):
                    sample.append(remap(item[2], mapping) if mapping else item[2])
                    if len(sample) >= DETECT_ROWS:
                        break
            fmt = detect(sample)
        self.formats[name] = fmt or "unknown"
        schema = SCHEMAS[fmt] if fmt else None
        to_canonical = schema.to_canonical if schema else None
        meta = schema.meta if schema else None
        make, read, written = Conversation.make, 0, 0
        try:
            for item in chain(head, items):
                read += 1
                if type(item) is Reject:
                    yield item
                    continue
                line, row, value, raw = item
                if type(value) is not dict:
                    detail = f"a row must be a JSON object, got {_kind(value)}"
                    yield Reject(name, line, "not_an_object", detail, None, row, _raw(value, raw))
                    continue
                if to_canonical is None:
                    yield Reject(name, line, "unknown_schema", _unknown(value), None, row, _raw(value, raw))
                    continue
                try:
                    mapped = remap(value, mapping) if mapping else value
                    messages = to_canonical(mapped)
                    row_meta = with_tools(mapped, meta) if "tools" in mapped else meta
                except RowError as e:
                    where = _column(e.field, mapping)
                    yield Reject(name, line, e.reason, e.detail, where, row, _raw(value, raw))
                    continue
                except RecursionError:  # a deep value the parser took but a message would not
                    yield Reject(name, line, "malformed_json", DEEP, None, row, _raw(value, raw))
                    continue
                written += 1
                yield make(messages, Source(name, line, row), row_meta)
        finally:  # also when the consumer stops early, so the counts match what was yielded
            self.rows_read += read
            self.counts[name] = {"read": read, "written": written, "rejected": read - written}


def convert(
    name: str, line: int | None, row: int | None, value: Any, raw: str | None, fmt: str | None, mapping: Mapping[str, str]
) -> list[Message] | Reject:
    """One raw row read in schema ``fmt`` (None: no schema matched) as canonical messages, or the Reject
    saying why not: the rules of the stream, for readers that do not go through it (dedup's workers)."""
    if type(value) is not dict:
        return Reject(name, line, "not_an_object", f"a row must be a JSON object, got {_kind(value)}", None, row, _raw(value, raw))
    if fmt is None:
        return Reject(name, line, "unknown_schema", _unknown(value), None, row, _raw(value, raw))
    try:
        return SCHEMAS[fmt].to_canonical(remap(value, mapping) if mapping else value)
    except RowError as e:
        return Reject(name, line, e.reason, e.detail, _column(e.field, mapping), row, _raw(value, raw))
    except RecursionError:  # a deep value the parser took but a message would not
        return Reject(name, line, "malformed_json", DEEP, None, row, _raw(value, raw))


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(type(value), type(value).__name__)


def _unknown(row: dict[str, Any]) -> str:
    cols = ", ".join(list(row)[:8]) or "(none)"
    return f"columns {cols} match no schema; pass --format or --map FIELD=COLUMN"


def _raw(value: Any, raw: str | None) -> str:
    if raw is not None:  # the JSONL line as it was
        return raw.rstrip("\r\n")
    try:
        return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "replace").decode("utf-8")
    except RecursionError:
        return "(nested too deeply to show)"


def _column(field_path: str | None, mapping: Mapping[str, str]) -> str | None:
    # name the column the user knows: with --map instruction=question a missing field is "question"
    if not field_path or not mapping:
        return field_path
    head = field_path.split("[", 1)[0].split(".", 1)[0]
    return mapping[head] + field_path[len(head) :] if head in mapping else field_path


def stream(
    paths: PathLike | Iterable[PathLike],
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    on_progress: ProgressFn | None = None,
) -> IngestStream:
    """Conversations and Rejects from ``paths`` in file order; the stream also carries counts and formats."""
    return IngestStream(paths, format=format, mapping=mapping, on_progress=on_progress)


# --- whole-dataset helpers ----------------------------------------------------------------------


@dataclass
class Ingested:
    """Everything read from some inputs, held in memory."""

    conversations: list[Conversation]
    rejects: list[Reject]
    rows_read: int
    files: list[str]
    formats: dict[str, str] = field(default_factory=dict)  # per file (or split): the schema read

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejects).items()))

    def require_rows(self) -> Ingested:
        """Self, or a WorkbenchError naming why no row can be used (every row rejected, or none there)."""
        if not self.conversations:
            raise no_usable_rows(self.files, self.rows_read, self.rejected_by_reason)
        return self


def require_usable(
    paths: PathLike | Iterable[PathLike], *, format: str | None = None, mapping: Mapping[str, str] | None = None
) -> None:
    """Raise unless the inputs can be opened and hold at least one usable row. Reads only up to the
    first usable row (at once for any ordinary file); for the lazy TUI, which otherwise opens anything."""
    s = stream(paths, format=format, mapping=mapping)
    rejected: Counter[str] = Counter()
    for item in s:
        if type(item) is Conversation:
            return
        rejected[item.reason] += 1  # type: ignore[union-attr]
    raise no_usable_rows(s.files, s.rows_read, rejected)


def no_usable_rows(files: list[str], read: int, rejected: Mapping[str, int]) -> WorkbenchError:
    """The error for inputs that hold no usable row: what was read, and the rejects by reason."""
    where = ", ".join(files) or "the input"
    if not read:
        return WorkbenchError(f"no rows in {where}", "the input holds no data rows (a header only, or only blank lines?)")
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(rejected.items()))
    return WorkbenchError(
        f"no usable rows in {where}: {read} read, {sum(rejected.values())} rejected ({reasons})",
        "`workbench ingest FILE -o clean.jsonl` writes each reject with its file, line, field and reason",
    )


def load(
    paths: PathLike | Iterable[PathLike],
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    on_progress: ProgressFn | None = None,
) -> Ingested:
    """Read every input into memory: conversations, rejects and counts."""
    s = stream(paths, format=format, mapping=mapping, on_progress=on_progress)
    conversations: list[Conversation] = []
    rejects: list[Reject] = []
    for item in s:
        (conversations if type(item) is Conversation else rejects).append(item)  # type: ignore[arg-type]
    return Ingested(conversations, rejects, s.rows_read, s.files, s.formats)


@dataclass
class IngestReport:
    """What ``ingest_to`` did: where it wrote, and counts that add up (read = written + rejected)."""

    output: str
    output_format: str
    rejects_path: str
    read: int
    written: int
    rejected: int
    rejected_by_reason: dict[str, int]
    formats: dict[str, str]
    per_file: dict[str, dict[str, int]]
    findings: list[Finding]
    reject_examples: list[Reject]  # the first reject of each reason
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "output_format": self.output_format,
            "rejects_path": self.rejects_path,
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "formats": self.formats,
            "per_file": self.per_file,
            "findings": [f.to_dict() for f in self.findings],
            "reject_examples": [r.to_dict() | {"raw": None} for r in self.reject_examples],
            "seconds": round(self.seconds, 3),
        }


def default_rejects_path(output: PathLike) -> Path:
    """``clean.jsonl`` → ``clean.rejects.jsonl`` beside it (``clean/`` → ``clean.rejects.jsonl``)."""
    out = Path(os.fspath(output).rstrip("/"))
    stem = out.name.rsplit(".", 1)[0] if out.suffix else out.name
    return out.with_name(f"{stem}.rejects.jsonl")


def ingest_to(
    paths: PathLike | Iterable[PathLike],
    output: PathLike,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    rejects_path: PathLike | None = None,
    output_format: str | None = None,
    on_progress: ProgressFn | None = None,
) -> IngestReport:
    """Stream ``paths`` into canonical messages at ``output``, rejects (with reasons) to a side file.

    Both files appear only if the whole run succeeds. Lint findings are reported, not fixed.
    """
    started = time.perf_counter()
    kind = format_for(output, output_format)
    s = stream(paths, format=format, mapping=mapping, on_progress=on_progress)
    out_path = Path(os.fspath(output))
    rej_path = Path(os.fspath(rejects_path)) if rejects_path else default_rejects_path(output)
    guard([("output", out_path), ("rejects file", rej_path)], [src.path for src in s.inputs])
    linter, by_reason, first = Linter(), Counter[str](), {}
    with atomic_text(rej_path) as rejects_fh:

        def conversations() -> Iterator[Conversation]:
            for item in s:
                if type(item) is Conversation:
                    linter.add(item)
                    yield item
                else:
                    by_reason[item.reason] += 1
                    first.setdefault(item.reason, item)
                    rejects_fh.write(json.dumps(item.to_dict(), ensure_ascii=False))
                    rejects_fh.write("\n")

        written = write_conversations(out_path, conversations(), kind)
    return IngestReport(
        output=os.fspath(output),
        output_format=kind,
        rejects_path=str(rej_path),
        read=s.rows_read,
        written=written,
        rejected=sum(by_reason.values()),
        rejected_by_reason=dict(sorted(by_reason.items())),
        formats=dict(s.formats),
        per_file=dict(s.counts),
        findings=linter.findings(),
        reject_examples=[first[r] for r in sorted(first)],
        seconds=time.perf_counter() - started,
    )
