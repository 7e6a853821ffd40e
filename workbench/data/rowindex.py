"""Byte offsets of a JSONL file's rows, found fast with numpy; each row is parsed only when asked for.

Opening a 1,000,000-row file costs one pass of ``np.flatnonzero(buf == b"\\n")`` over 8 MiB chunks
(well under a second from the page cache), so a viewer can show the first rows at once and parse
only what it shows. Rows become Conversations (or Rejects) exactly as `workbench ingest` reads
them: same schema detection, same ``--map`` renames, same reject reasons.
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError
from workbench.data.formats import SCHEMAS, RowError, detect, remap, row_meta
from workbench.data.readers import DEEP
from workbench.records import Conversation, Reject, Source

CHUNK = 8 << 20
DETECT_ROWS = 32  # as in ingest: rows sampled from the head to detect the schema
SEARCH_CHUNK = 32 << 20  # bytes per vectorised search slice: hits stream in, a new query stops it within one
CACHE_ROWS = 4096
OWN_ID_KEYS = ("id", "_id")  # a row's own identifier, shown beside workbench's content id  # parsed rows kept (a few screens' worth and the current example's neighbours)

ChunkFn = Callable[[int, int, int], None]  # (rows so far, bytes done, bytes total)


class RowIndex:
    """Rows of one JSONL file by position: ``raw(i)``, ``item(i)`` (Conversation or Reject), ``search``.

    ``build()`` fills the offsets chunk by chunk; rows already indexed can be read while it runs
    (from another thread: the arrays are replaced whole, never resized in place).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None,
                 format: str | None = None, mapping: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.name = name or os.fspath(path)
        if not self.path.is_file():
            raise WorkbenchError(f"cannot read {self.name}: no such file", "check the path")
        self.size = self.path.stat().st_size
        if self.size == 0:
            raise WorkbenchError(f"cannot read {self.name}: the file is empty", "check that it was written completely")
        self.mapping = dict(mapping or {})
        self.format = None if format in (None, "auto") else format
        self.starts = np.empty(0, dtype=np.int64)
        self.ends = np.empty(0, dtype=np.int64)
        self.lines = np.empty(0, dtype=np.int64)  # 1-based line number of each row
        self.complete = False
        self.bytes_done = 0
        self._fh = open(self.path, "rb")  # noqa: SIM115 - held for the mmap's lifetime
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._cache: OrderedDict[int, Conversation | Reject] = OrderedDict()
        self._own: OrderedDict[int, str | None] = OrderedDict()
        self._detected = False

    def __len__(self) -> int:
        return len(self.starts)

    def close(self) -> None:
        self._mm.close()
        self._fh.close()

    # --- the index ---------------------------------------------------------------------------

    def build(self, on_chunk: ChunkFn | None = None, chunk: int = CHUNK, stop: Callable[[], bool] | None = None) -> None:
        """Find every row's byte range; blank lines are not rows (their line numbers still count)."""
        size = self.size
        base = 3 if self._mm[:3] == codecs.BOM_UTF8 else 0
        line_start, line_no = base, 0
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        lines: list[np.ndarray] = []
        pos = base
        while pos < size:
            if stop is not None and stop():
                return
            end = min(size, pos + chunk)
            # read, not the mmap: scanning through the map would make the whole file resident in this process
            buf = np.frombuffer(os.pread(self._fh.fileno(), end - pos, pos), dtype=np.uint8)
            nl = np.flatnonzero(buf == 10).astype(np.int64) + pos
            if end == size and (len(nl) == 0 or nl[-1] != size - 1):
                nl = np.append(nl, size)  # a last line with no newline
            if len(nl):
                s = np.empty(len(nl), dtype=np.int64)
                s[0] = line_start
                s[1:] = nl[:-1] + 1
                ln = np.arange(line_no + 1, line_no + 1 + len(nl), dtype=np.int64)
                keep = self._non_blank(s, nl, buf, pos)
                starts.append(s[keep])
                ends.append(nl[keep])
                lines.append(ln[keep])
                line_start, line_no = int(nl[-1]) + 1, line_no + len(nl)
                self.starts = np.concatenate(starts) if len(starts) > 1 else starts[0]
                self.ends = np.concatenate(ends) if len(ends) > 1 else ends[0]
                self.lines = np.concatenate(lines) if len(lines) > 1 else lines[0]
                starts, ends, lines = [self.starts], [self.ends], [self.lines]
            pos = end
            self.bytes_done = pos
            if on_chunk is not None:
                on_chunk(len(self.starts), pos, size)
        self.complete = True

    def _non_blank(self, s: np.ndarray, e: np.ndarray, buf: np.ndarray, pos: int) -> np.ndarray:
        # a line is blank when it is empty or whitespace; only lines that start with whitespace need a look
        first = np.full(len(s), 10, dtype=np.uint8)  # starts outside this chunk: looked at one by one below
        inside = (s >= pos) & (s < pos + len(buf))
        first[inside] = buf[s[inside] - pos]
        suspect = (e <= s) | (first == 32) | (first == 9) | (first == 13) | (first == 10)
        keep = ~suspect
        for i in np.flatnonzero(suspect):
            keep[i] = bool(self._mm[int(s[i]) : int(e[i])].strip())
        return keep

    # --- rows --------------------------------------------------------------------------------

    def raw(self, i: int) -> bytes:
        data = self._mm[int(self.starts[i]) : int(self.ends[i])]
        return data[:-1] if data.endswith(b"\r") else data

    def line(self, i: int) -> int:
        return int(self.lines[i])

    def source(self, i: int) -> Source:
        return Source(self.name, int(self.lines[i]))

    def own_id(self, i: int) -> str | None:
        """The row's own ``id`` field (the dataset's, not workbench's content hash), when it has one."""
        hit = self._own.get(i, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        out = None
        data = self.raw(i)
        if b'"id"' in data or b'"_id"' in data:  # most rows have none: skip the parse
            try:
                value = json.loads(data)
            except ValueError:
                value = None
            if isinstance(value, dict):
                for key in OWN_ID_KEYS:
                    v = value.get(key)
                    if isinstance(v, (str, int)) and not isinstance(v, bool):
                        out = str(v)
                        break
        self._own[i] = out
        if len(self._own) > CACHE_ROWS:
            self._own.popitem(last=False)
        return out

    def schema_name(self) -> str | None:
        """The schema rows are read in: given, or detected from the first rows like ingest does."""
        if not self._detected:
            sample: list[dict[str, Any]] = []
            if self.format is None:
                for i in range(min(len(self), DETECT_ROWS * 2)):
                    try:
                        value = json.loads(self.raw(i))
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(value, dict):
                        sample.append(remap(value, self.mapping) if self.mapping else value)
                        if len(sample) >= DETECT_ROWS:
                            break
                self.format = detect(sample)
            # settle once a format is known or enough rows were seen to be sure there is none
            self._detected = self.format is not None or len(sample) >= DETECT_ROWS or self.complete
        return self.format

    def item(self, i: int) -> Conversation | Reject:
        """Row ``i`` as a Conversation, or the Reject ingest would have written for it."""
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        out = self._parse(i)
        self._cache[i] = out
        if len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)
        return out

    def parse(self, i: int) -> Conversation | Reject:
        """Row ``i`` parsed afresh, bypassing the cache (for full scans that should not evict it)."""
        return self._parse(i)

    def _parse(self, i: int) -> Conversation | Reject:
        line, data = int(self.lines[i]), self.raw(i)
        if i == 0 and data.startswith(codecs.BOM_UTF8):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raw = data.decode("utf-8", "replace")
            return Reject(self.name, line, "invalid_utf8", f"invalid UTF-8 at byte {e.start}", None, None, raw)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            return Reject(self.name, line, "malformed_json", f"{e.msg} at column {e.pos + 1}", None, None, text)
        except RecursionError:  # the same reject ingest gives; the app goes on
            return Reject(self.name, line, "malformed_json", DEEP, None, None, text)
        if type(value) is not dict:
            return Reject(self.name, line, "not_an_object", "a row must be a JSON object", None, None, text)
        fmt = self.schema_name()
        if fmt is None:
            cols = ", ".join(list(value)[:8]) or "(none)"
            detail = f"columns {cols} match no schema; pass --format or --map FIELD=COLUMN"
            return Reject(self.name, line, "unknown_schema", detail, None, None, text)
        schema = SCHEMAS[fmt]
        try:
            mapped = remap(value, self.mapping) if self.mapping else value
            messages = schema.to_canonical(mapped)
            meta = row_meta(mapped, schema.meta) if "tools" in mapped else schema.meta
        except RowError as e:
            return Reject(self.name, line, e.reason, e.detail, e.field, None, text)
        except RecursionError:  # a deep value the parser took but a message would not
            return Reject(self.name, line, "malformed_json", DEEP, None, None, text)
        return Conversation.make(messages, Source(self.name, line), meta)

    # --- search ------------------------------------------------------------------------------

    def search(self, text: str, *, ignore_case: bool = True, stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Positions of the rows whose raw JSON line holds ``text``, in order (see ``search_chunks``)."""
        parts = [hits for hits, _ in self.search_chunks(text, ignore_case=ignore_case, stop=stop)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def search_regex(self, regex: str) -> np.ndarray:
        """Positions of the rows whose raw line matches a (Rust-syntax) regular expression."""
        parts = [hits for hits, _ in self.search_chunks("", regex=regex)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def search_chunks(self, text: str, *, ignore_case: bool = True, stop: Callable[[], bool] | None = None,
                      chunk: int = SEARCH_CHUNK, regex: str | None = None) -> Iterator[tuple[np.ndarray, int]]:  # fmt: skip
        """``(hits, rows done)`` per slice of about ``chunk`` bytes of the rows indexed so far.

        Each slice is one vectorised regex pass (polars, over the file's own bytes through a
        zero-copy Arrow view, off the GIL), so a caller can show hits as they come and stop between
        slices. A slice holding invalid UTF-8 falls back to a bytes regex for that slice.
        """
        import polars as pl
        import pyarrow as pa

        starts, ends, n = self.starts, self.ends, len(self.starts)
        if not n or not (text or regex):
            return
        if regex is None:
            regex = _regex(text, ignore_case)
        data = pa.py_buffer(self._mm)
        try:
            a = 0
            while a < n:
                if stop is not None and stop():
                    return
                b = int(np.searchsorted(starts, starts[a] + chunk, side="left"))
                b = min(max(b, a + 1), n)
                offsets = np.empty(b - a + 1, dtype=np.int64)
                offsets[:-1] = starts[a:b]
                offsets[-1] = ends[b - 1]
                arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), b - a, [None, pa.py_buffer(offsets), data])
                try:
                    found = pl.from_arrow(arr).cast(pl.String).str.contains(regex)  # type: ignore[union-attr]
                    hits = np.flatnonzero(found.to_numpy()).astype(np.int64) + a
                except pl.exceptions.PolarsError:  # invalid UTF-8 somewhere in the slice
                    fallback = _pattern(text, ignore_case) if text else re.compile(regex.encode(), re.IGNORECASE)
                    hits = self._search_bytes(fallback, a, b)
                del arr
                yield hits, b
                a = b
        finally:
            del data

    def _search_bytes(self, pattern: re.Pattern[bytes], a: int, b: int) -> np.ndarray:
        hits: list[int] = []
        for i in range(a, b):
            if pattern.search(self._mm, int(self.starts[i]), int(self.ends[i])):
                hits.append(i)
        return np.asarray(hits, dtype=np.int64)


_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~ ")


def _escape(s: str) -> str:
    return "".join("\\" + c if c in _REGEX_META else c for c in s)


def _regex(text: str, ignore_case: bool) -> str:
    """``text`` as a (Rust) regex over a JSON line: escaped like json.dumps, non-ASCII raw or as \\uXXXX."""
    parts = []
    for ch in text:
        if ch.isascii():
            parts.append(_escape(json.dumps(ch)[1:-1]))
            continue
        variants = {ch, ch.lower(), ch.upper()} if ignore_case else {ch}
        alts = {_escape(ch)}
        for v in variants:
            if len(v) == 1:
                alts.add(_escape(json.dumps(v)[1:-1]))
        parts.append("(?:" + "|".join(sorted(alts)) + ")")
    return ("(?i)" if ignore_case else "") + "".join(parts)

def _pattern(text: str, ignore_case: bool) -> re.Pattern[bytes]:
    """``text`` as it can be spelled inside a JSON line: escaped like json.dumps, non-ASCII raw or as \\uXXXX.

    A bytes regex folds ASCII case only, so non-ASCII letters list their case variants themselves.
    """
    parts = []
    for ch in text:
        if ch.isascii():
            parts.append(re.escape(json.dumps(ch)[1:-1].encode()))
            continue
        variants = {ch, ch.lower(), ch.upper()} if ignore_case else {ch}
        alts = set()
        for v in variants:
            if len(v) != 1:  # e.g. "ß".upper() == "SS": keep the character itself
                continue
            alts.add(re.escape(v.encode("utf-8", "surrogatepass")))
            alts.add(re.escape(json.dumps(v)[1:-1].encode()))
        parts.append(b"(?:" + b"|".join(sorted(alts)) + b")")
    return re.compile(b"".join(parts), re.IGNORECASE if ignore_case else 0)
