"""Readers: turn a path (JSONL, JSON, CSV/TSV, Parquet, `save_to_disk` dir, `hf:` dataset) into raw rows."""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from workbench.errors import WorkbenchError, first_line
from workbench.data.formats import SCHEMAS, detect, remap
from workbench.records import Reject

PathLike = Union[str, "os.PathLike[str]"]
Item = Union[tuple[int | None, int | None, Any, str | None], Reject]  # (line, row, value, raw json text) or a reject

EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl", ".json": "json",
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
HUB_PREFIX = "hf:"
DETECT_ROWS = 32  # objects sampled from the head of each file to detect its schema
PROGRESS_EVERY = 4096  # rows between progress callbacks
FIELDS = frozenset(k for s in SCHEMAS.values() for k in s.keys) | {"input", "system"}
DEEP = "nested too deeply to parse"  # the reject detail for a row past the JSON parser's recursion limit
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # a whole string (brackets in it do not count), or a bracket


def _value_end(text: str, start: int) -> int:
    """Where the array or object that starts at ``start`` ends (bracket matching that skips strings)."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text, start):
        t = m.group()
        if t == "[" or t == "{":
            depth += 1
        elif t == "]" or t == "}":
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)


@dataclass(frozen=True)
class _Input:
    name: str  # as given on the command line; what sources and rejects name
    kind: str  # jsonl | json | csv | tsv | parquet | disk | hub
    path: Path | None
    size: int | None  # bytes, for progress; None for hub datasets


def _cannot(name: str, why: str, hint: str) -> WorkbenchError:
    return WorkbenchError(f"cannot read {name}: {why}", hint)


def _resolve(spec: PathLike) -> _Input:
    """Check an input exists and is readable, and pick its reader; raise WorkbenchError otherwise."""
    name = os.fspath(spec)
    if name.startswith(HUB_PREFIX):
        if not name[len(HUB_PREFIX) :].strip():
            raise _cannot(name, "no dataset name after 'hf:'", "use hf:NAME, hf:NAME:CONFIG or hf:NAME:CONFIG#SPLIT, e.g. hf:openai/gsm8k:main#test")
        return _Input(name, "hub", None, None)
    path = Path(name)
    if not path.exists():
        raise _cannot(name, "no such file or directory", "check the path; for a Hugging Face dataset use hf:NAME")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            size = sum(f.stat().st_size for f in path.rglob("*.arrow"))
            return _Input(name, "disk", path, size)
        raise _cannot(
            name,
            "a directory that is not a datasets save_to_disk() directory",
            f"pass the files inside it (e.g. {name.rstrip('/')}/*.jsonl), or hf:{name} to read it with datasets.load_dataset",
        )
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise _cannot(name, f"unknown file type {path.suffix or '(no extension)'!r}",
                      f"supported: {', '.join(sorted(EXTENSIONS))}, save_to_disk directories and hf:NAME")  # fmt: skip
    if not os.access(path, os.R_OK):
        raise _cannot(name, "permission denied", "check the file's permissions")
    size = path.stat().st_size
    if size == 0 or _blank(path):
        raise _cannot(name, "the file is empty (nothing but blank lines)" if size else "the file is empty",
                      "check that it was written completely")  # fmt: skip
    return _Input(name, kind, path, size)


def _blank(path: Path) -> bool:
    """True when the file holds only whitespace (after a BOM), whatever its size; stops at the first other byte."""
    with open(path, "rb") as fh:
        chunk = fh.read(1 << 16).removeprefix(codecs.BOM_UTF8)
        while chunk:
            if chunk.strip():
                return False
            chunk = fh.read(1 << 16)
    return True


# --- readers: each yields (line, row, value, raw) tuples or Rejects ----------------------------


def jsonl_value(name: str, lineno: int, data: bytes) -> tuple[Any, str] | Reject | None:
    """One JSONL line (bytes, BOM already stripped): its value and text, a Reject saying why not, or
    None for a blank line (not a row). The rules of ``_read_jsonl``, for readers of byte ranges."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raw = data.decode("utf-8", "replace").rstrip("\r\n")
        return Reject(name, lineno, "invalid_utf8", f"invalid UTF-8 at byte {e.start}", None, None, raw)
    try:
        value = json.loads(text)
    except ValueError as e:
        if text.isspace() or not text:
            return None  # blank lines are not rows
        detail = f"{e.msg} at column {e.pos + 1}" if isinstance(e, json.JSONDecodeError) else str(e)
        return Reject(name, lineno, "malformed_json", detail, None, None, text.rstrip("\r\n"))
    except RecursionError:
        return Reject(name, lineno, "malformed_json", "nested too deeply to read", None, None, text.rstrip("\r\n")[:1000])
    if ("\\ud" in text or "\\uD" in text) and (bad := _lone_surrogate(name, lineno, None, value, text)):
        return bad
    return value, text


def _read_jsonl(name: str, path: Path, report: Callable[[int], None]) -> Iterator[Item]:
    # bytes in, decoded line by line, so one bad line is one reject and not a dead file
    loads = json.loads
    with open(path, "rb") as fh:
        for lineno, data in enumerate(fh, 1):
            if lineno == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raw = data.decode("utf-8", "replace").rstrip("\r\n")
                yield Reject(name, lineno, "invalid_utf8", f"invalid UTF-8 at byte {e.start}", None, None, raw)
                continue
            try:
                value = loads(text)
            except ValueError as e:
                if text.isspace():
                    continue  # blank lines are not rows
                detail = f"{e.msg} at column {e.pos + 1}" if isinstance(e, json.JSONDecodeError) else str(e)
                yield Reject(name, lineno, "malformed_json", detail, None, None, text.rstrip("\r\n"))
                continue
            except RecursionError:  # a 5,000-deep array: one hostile row must not end the read
                yield Reject(name, lineno, "malformed_json", DEEP, None, None, text.rstrip("\r\n"))
                continue
            if ("\\ud" in text or "\\uD" in text) and (bad := _lone_surrogate(name, lineno, None, value, text)):
                yield bad
                continue
            yield lineno, None, value, text
            if not lineno % PROGRESS_EVERY:
                report(fh.tell())


def _read_json(name: str, path: Path, report: Callable[[int], None], mapping: Mapping[str, str]) -> Iterator[Item]:
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _cannot(name, f"invalid UTF-8 at byte {e.start}",
                      "re-encode it as UTF-8, or save it as JSONL so bad rows are rejected one by one") from None  # fmt: skip
    head = text.lstrip()[:1]
    if head == "[":  # an array of rows: decoded row by row, so the first rows are there before the last is read
        yield from _read_json_array(name, text, len(data), report)
        return
    try:
        value = json.loads(text)
    except RecursionError:
        raise _cannot(name, "nested too deeply to read as one JSON document",
                      "save it as JSON Lines (one row per line), so a bad row is rejected on its own") from None  # fmt: skip
    except json.JSONDecodeError as e:
        if head == "{":  # JSON Lines saved as .json (common on the hub)
            yield from _read_jsonl(name, path, report)
            return
        raise _cannot(name, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                      "a .json file must hold an array of rows, an object with one list of rows, or JSON Lines") from None  # fmt: skip
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list)]
        inner = value[lists[0]] if len(lists) == 1 else []
        if inner and _looks_like_rows(inner, mapping):
            rows: list[Any] = inner  # {"data": [row, row, ...]}
        elif detect([remap(value, mapping)]) is not None:
            rows = [value]  # one row on its own, e.g. {"messages": [...]}
        else:
            raise _cannot(name, f"a JSON object holding {len(lists)} lists of rows ({', '.join(lists) or 'none'})",
                          "the object must hold exactly one list of rows, or be one row")  # fmt: skip
    elif isinstance(value, list):
        rows = value
    else:
        raise _cannot(name, f"a JSON {type(value).__name__}, not rows", "the file must hold an array of row objects")
    check = "\\ud" in text or "\\uD" in text
    for i, row in enumerate(rows):
        if check and (bad := _lone_surrogate(name, None, i, row, None)):
            yield bad
            continue
        yield None, i, row, None
    report(path.stat().st_size)


def _read_json_array(name: str, text: str, size: int, report: Callable[[int], None]) -> Iterator[Item]:
    """The rows of a top-level JSON array, one ``raw_decode`` each (the C scanner json.loads uses)."""
    decode = json.JSONDecoder().raw_decode
    ws = " \t\r\n"
    n = len(text)
    pos = text.index("[") + 1
    i = 0
    while True:
        while pos < n and text[pos] in ws:
            pos += 1
        if pos < n and text[pos] == "]" and i == 0:
            pos += 1
            break
        start = pos
        try:
            row, pos = decode(text, pos)
        except RecursionError:  # one row nested too deeply: that row is rejected, the rest are read
            pos = _value_end(text, start)
            yield Reject(name, None, "malformed_json", DEEP, None, i, text[start : min(pos, start + 200)])
        except json.JSONDecodeError as e:
            raise _cannot(name, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                          "a .json file must hold an array of rows, an object with one list of rows, or JSON Lines") from None  # fmt: skip
        else:
            # a surrogate escape is looked for in this row's own text only: a scan of the whole file first costs seconds
            escaped = text.find("\\ud", start, pos) >= 0 or text.find("\\uD", start, pos) >= 0
            if escaped and (bad := _lone_surrogate(name, None, i, row, None)):
                yield bad
            else:
                yield None, i, row, None
        i += 1
        if not i % PROGRESS_EVERY:
            report(pos * size // max(n, 1))
        while pos < n and text[pos] in ws:
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "]":
            pos += 1
            break
        line = text.count("\n", 0, pos) + 1
        raise _cannot(name, f"not valid JSON (expected ',' or ']' at line {line})",
                      "a .json file must hold an array of rows, an object with one list of rows, or JSON Lines")  # fmt: skip
    if text[pos:].strip():
        line = text.count("\n", 0, pos) + 1
        raise _cannot(name, f"not valid JSON (extra data after the array at line {line})",
                      "a .json file must hold one array of rows")  # fmt: skip
    report(size)


def _looks_like_rows(items: list[Any], mapping: Mapping[str, str]) -> bool:
    sample = [remap(v, mapping) for v in items[:DETECT_ROWS] if isinstance(v, dict)]
    return detect(sample) is not None


def _lone_surrogate(name: str, line: int | None, row: int | None, value: Any, raw: str | None) -> Reject | None:
    # a JSON escape such as "\ud800" decodes to a lone surrogate, which no UTF-8 writer accepts
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        return Reject(name, line, "malformed_json", DEEP, None, row, (raw or "")[:200])
    except UnicodeEncodeError:
        raw = raw.rstrip("\r\n") if raw is not None else json.dumps(value)
        return Reject(name, line, "invalid_utf8", "a lone surrogate escape (\\udXXX) in a string", None, row, raw)
    return None


def _read_csv(name: str, path: Path, report: Callable[[int], None], delimiter: str) -> Iterator[Item]:
    csv.field_size_limit(2**31 - 1)  # long completions overflow the 128 KiB default
    # surrogateescape keeps bad bytes as lone surrogates so the row holding them can be rejected
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None) or []
        start, i = reader.line_num + 1, 0
        for values in reader:
            line, start = start, reader.line_num + 1
            if not values:
                continue
            row, i = i, i + 1
            try:
                "\x1f".join(values).encode("utf-8")
            except UnicodeEncodeError:
                raw = "\x1f".join(values).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield Reject(name, line, "invalid_utf8", "invalid UTF-8 in this row", None, row, raw)
                continue
            if len(values) != len(header):
                detail = f"{len(values)} cells under {len(header)} columns"
                yield Reject(name, line, "malformed_csv", detail, None, row, delimiter.join(values))
                continue
            yield line, row, dict(zip(header, values)), None
            if not i % PROGRESS_EVERY:
                report(fh.buffer.tell())


def _read_parquet(name: str, path: Path, report: Callable[[int], None]) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise _cannot(name, f"not a readable Parquet file ({first_line(e)})", "check the file was written completely") from None
    total, i, size = max(pf.metadata.num_rows, 1), 0, path.stat().st_size
    batches = pf.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches, None)
        except Exception as e:  # a corrupt page deep in the file
            raise _cannot(name, f"Parquet read failed near row {i} ({first_line(e)})", "check the file was written completely") from None
        if batch is None:
            return
        for row in batch.to_pylist():
            yield None, i, row, None
            i += 1
        report(int(size * i / total))


def _read_dataset(ds: Any) -> Iterator[Item]:
    i = 0
    for batch in ds.iter(batch_size=2048):
        keys = list(batch)
        for values in zip(*batch.values()):
            yield None, i, dict(zip(keys, values)), None
            i += 1


def _load_hub(spec: str) -> Any:
    import datasets

    rest = spec[len(HUB_PREFIX) :]
    rest, _, split = rest.partition("#")
    name, _, config = rest.partition(":")
    try:
        return datasets.load_dataset(name, config or None, split=split or None)
    except Exception as e:  # the hub, scripts and local builders raise many types
        raise _cannot(spec, first_line(e), "check the name, config and split (hf:NAME:CONFIG#SPLIT); the hub needs network") from None


def _parts(src: _Input, report: Callable[[int], None], mapping: Mapping[str, str]) -> Iterator[tuple[str, Iterator[Item]]]:
    """(name, items) for each table in an input: one for a file, one per split for a DatasetDict."""
    if src.kind in ("disk", "hub"):
        if src.kind == "disk":
            import datasets

            try:
                ds = datasets.load_from_disk(str(src.path))
            except Exception as e:
                raise _cannot(src.name, first_line(e), "was it written by Dataset.save_to_disk()?") from None
            sep = "/"
        else:
            ds, sep = _load_hub(src.name), "#"
        if hasattr(ds, "keys"):  # a DatasetDict: every split, in order
            for split in ds:
                yield f"{src.name.rstrip('/')}{sep}{split}", _read_dataset(ds[split])
        else:
            yield src.name, _read_dataset(ds)
        return
    assert src.path is not None
    if src.kind == "jsonl":
        yield src.name, _read_jsonl(src.name, src.path, report)
    elif src.kind == "json":
        yield src.name, _read_json(src.name, src.path, report, mapping)
    elif src.kind in ("csv", "tsv"):
        yield src.name, _read_csv(src.name, src.path, report, "," if src.kind == "csv" else "\t")
    else:
        yield src.name, _read_parquet(src.name, src.path, report)
