"""Ray Data's side of dedup's files: a datasource that ingests each input as `workbench ingest` does, and a sink
that writes kept, removed and rejected rows as sharded JSONL directories (local paths or object-store URLs).

Each input file is one read task, read by ``workbench.data.ingest`` itself, so schemas, rejects and sources are
exactly the local engine's; a file on an object store is first copied to the worker's local disk. Rows carry
``file`` (the input's position on the command line) and ``acc`` (the row's position among the file's accepted
rows), which give every row its place in input order without a global counter.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, WorkbenchError

SHARD = "part-{task:05d}.jsonl"
FILE_BITS = 40  # key = file << FILE_BITS | acc: up to 2^40 rows per file, 2^23 files


def is_url(path: str) -> bool:
    return "://" in path


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The input files in command-line order; a directory (or an object-store prefix) adds its data files, sorted."""
    import pyarrow.fs as pafs

    from workbench.data.readers import EXTENSIONS

    files: list[str] = []
    for spec in map(os.fspath, inputs):
        try:
            fs, root = pafs.FileSystem.from_uri(spec if is_url(spec) else os.path.abspath(spec))
            info = fs.get_file_info(root)
        except (OSError, ValueError) as e:  # pyarrow's errors for bad URLs and unreachable stores
            raise WorkbenchError(f"cannot read {spec}: {str(e).splitlines()[0]}", "a local path, or a URL pyarrow reads (s3://, gs://, hdfs://)") from None
        if info.type == pafs.FileType.NotFound:
            raise WorkbenchError(f"cannot read {spec}: no such file or directory", "check the path")
        if info.type == pafs.FileType.Directory:
            found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
                           if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in EXTENSIONS)  # fmt: skip
            if not found:
                raise WorkbenchError(f"cannot read {spec}: no data files in it", f"supported: {', '.join(sorted(EXTENSIONS))}")
            prefix = spec.split("://", 1)[0] + "://" if is_url(spec) else ""
            files += [prefix + f for f in found]
        else:
            files.append(spec)
    return files


def _resolved(path: str) -> str:
    """A path as Ray's file datasources name it to a read task (no scheme; local paths absolute)."""
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(path)[1] if is_url(path) else os.path.abspath(path)


def make_source(files: list[str], *, on: str, format: str | None, mapping: dict[str, str] | None) -> Any:
    """A Ray Data datasource over ``files`` whose rows are ingested conversations and rejects."""
    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    from workbench.data import ingest
    from workbench.dedup.views import text_view

    order = {_resolved(f): (i, f) for i, f in enumerate(files)}

    class IngestSource(FileBasedDatasource):  # type: ignore[misc]
        """One read task per file; each row is a conversation (or a reject) with its place in the input."""

        def _read_stream(self, f: Any, path: str) -> Iterator[Any]:
            index, name = order[path]
            local, tmp = (path, None) if not is_url(name) else _copy_local(f, path)
            try:
                yield from _ingest_blocks(ingest.stream([local], format=format, mapping=mapping), index, name, local, on, text_view, pa)
            finally:
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)

    return IngestSource([f if is_url(f) else os.path.abspath(f) for f in files])


def _copy_local(f: Any, path: str) -> tuple[str, str]:
    tmp = tempfile.mkdtemp(prefix="workbench-ray-")
    local = os.path.join(tmp, os.path.basename(path))
    with open(local, "wb") as out:
        shutil.copyfileobj(f, out, 1 << 20)
    return local, tmp


def _ingest_blocks(stream: Any, index: int, name: str, local: str, on: str, text_view: Any, pa: Any, block: int = 8192) -> Iterator[Any]:
    from dataclasses import replace

    from workbench.records import Conversation, Source

    schema = pa.schema([("file", pa.int64()), ("acc", pa.int64()), ("id", pa.string()), ("text", pa.string()),
                        ("length", pa.int64()), ("row", pa.string()), ("reject", pa.string())])  # fmt: skip
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    acc = 0
    for item in stream:
        if type(item) is Conversation:
            conv = item if local == name else replace(item, source=Source(name, item.source.line, item.source.row))
            cols["acc"].append(acc)
            cols["id"].append(conv.id)
            cols["text"].append(text_view(conv, on))
            cols["length"].append(sum(len(m.content) for m in conv.messages))
            cols["row"].append(conv.to_json())
            cols["reject"].append(None)
            acc += 1
        else:
            d = item.to_dict() | {"file": name}
            cols["acc"].append(-1)
            for k in ("id", "text", "row"):
                cols[k].append(None)
            cols["length"].append(0)
            cols["reject"].append(json.dumps(d, ensure_ascii=False))
        cols["file"].append(index)
        if len(cols["file"]) >= block:
            yield pa.table(cols, schema=schema)
            cols = {k: [] for k in cols}
    if cols["file"]:
        yield pa.table(cols, schema=schema)


# --- outputs --------------------------------------------------------------------------------------


def check_output_dir(path: str, inputs: Sequence[str], flag: str) -> None:
    """A sharded output is a directory: refuse a file-like name, one holding an input, or one holding other files."""
    if Path(path.rstrip("/")).suffix.lower() in (".jsonl", ".json", ".parquet", ".csv"):
        raise UsageError(f"{flag} {path}: --engine ray writes a directory of JSONL shards", f"give {flag} a directory name, e.g. {path.rsplit('.', 1)[0]}/")
    if is_url(path):
        return
    out = Path(path).resolve()
    for i in inputs:
        if not is_url(i) and (out == Path(i).resolve() or out in Path(i).resolve().parents):
            raise WorkbenchError(f"refusing to write {flag} {path}: it holds the input {i}", "choose a new directory")
    if out.is_file():
        raise WorkbenchError(f"refusing to overwrite {path}: it is a file, not an output directory", f"choose another {flag} path")
    if out.is_dir():
        other = [p.name for p in out.iterdir() if not (p.name.startswith("part-") and p.name.endswith(".jsonl"))]
        if other:
            raise WorkbenchError(f"refusing to replace {path}: it holds {other[0]}, which dedup did not write", f"choose a new or empty directory for {flag}")


def make_sink(dirs: dict[str, str | None], wanted: set[int]) -> Any:
    """A Ray Data datasink writing each task's ``kept`` / ``removed`` / ``rejected`` lines to one shard per
    directory (a directory of None is not written), and returning counts plus the rows whose key is in ``wanted``."""
    from ray.data import Datasink
    from ray.data.block import BlockAccessor

    class ShardSink(Datasink):  # type: ignore[misc]
        def __init__(self) -> None:
            self.returns: list[dict[str, Any]] = []

        def write(self, blocks: Any, ctx: Any) -> dict[str, Any]:
            lines: dict[str, list[str]] = {k: [] for k in dirs}
            found: dict[int, str] = {}
            for b in blocks:
                t = BlockAccessor.for_block(b).to_arrow().to_pydict()
                for kind, line, key in zip(t["kind"], t["line"], t["key"]):
                    lines[kind].append(line)
                    if key in wanted and kind == "kept":
                        found[key] = line
            for kind, rows in lines.items():
                where = dirs.get(kind)
                if where and rows:
                    _write_text(f"{where.rstrip('/')}/{SHARD.format(task=ctx.task_idx)}", "".join(r + "\n" for r in rows))
            return {"counts": {k: len(v) for k, v in lines.items()}, "found": found}

        def on_write_complete(self, write_result: Any) -> None:
            self.returns = list(write_result.write_returns)

    return ShardSink()


def _write_text(path: str, text: str) -> None:
    import pyarrow.fs as pafs

    if is_url(path):
        fs, p = pafs.FileSystem.from_uri(path)
        with fs.open_output_stream(p) as fh:
            fh.write(text.encode("utf-8"))
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
