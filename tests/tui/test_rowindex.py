"""The lazy JSONL row index reads rows exactly as ingest does, and finds them by substring."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

from workbench.data import ingest
from workbench.records import Conversation, Reject
from workbench.data.rowindex import RowIndex


def _write(path: Path, lines: list[str], *, bom: bool = False, crlf: bool = False, last_newline: bool = True) -> Path:
    nl = "\r\n" if crlf else "\n"
    text = nl.join(lines) + (nl if last_newline else "")
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8"))
    return path


def _row(i: int) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"q{i} héllo"}, {"role": "assistant", "content": f"a{i}"}]}, ensure_ascii=False)


def test_rows_match_ingest(tmp_path: Path) -> None:
    lines = [_row(0), "", _row(1), "   ", "not json", '{"messages": [{"role": "user", "content": ""}]}', "[1, 2]", _row(2)]
    for bom, crlf, last in ((False, False, True), (True, True, False), (False, True, True)):
        path = _write(tmp_path / "d.jsonl", lines, bom=bom, crlf=crlf, last_newline=last)
        ix = RowIndex(path, name="d.jsonl")
        ix.build(chunk=16)  # tiny chunks: rows cross chunk edges
        data = ingest.load([str(path)])
        items = [ix.item(i) for i in range(len(ix))]
        assert [c.id for c in items if isinstance(c, Conversation)] == [c.id for c in data.conversations]
        assert [str(c.source) for c in items if isinstance(c, Conversation)] == [f"d.jsonl:{c.source.line}" for c in data.conversations]
        assert [(r.line, r.reason) for r in items if isinstance(r, Reject)] == [(r.line, r.reason) for r in data.rejects]
        assert [int(x) for x in ix.lines] == [1, 3, 5, 6, 7, 8]  # blank lines are not rows; numbers still count them


def test_search_and_progress(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", [_row(i) for i in range(1000)])
    ix = RowIndex(path)
    seen: list[int] = []
    ix.build(lambda rows, done, total: seen.append(rows), chunk=4096)
    assert ix.complete and len(ix) == 1000 and seen[-1] == 1000 and len(seen) > 5
    assert list(ix.search("q99 ")) == [99]
    assert list(ix.search("HÉLLO"))[:3] == [0, 1, 2]  # case-insensitive, non-ASCII as written in the file
    assert len(ix.search("nowhere")) == 0


def test_core_does_not_import_textual() -> None:
    code = "import sys, workbench.data.rowindex; assert 'textual' not in sys.modules and 'rich' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
