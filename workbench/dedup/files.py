"""`workbench dedup` on files: read the rows (``rows``), decide (``decide``), write the user's own rows back.

The kept file holds the kept rows exactly as the user wrote them: a JSONL row is its input line,
byte for byte (fields, key order, escapes and ids as they were); a row of another format is its
original columns as one JSON object (or a Parquet/HF row). ``canonical=True`` writes canonical
messages instead, as ``ingest`` does. The removed file holds each removed row the same way, with a
``removed`` object added: reason, cluster, the kept row's id and ``file:line``, similarity, the
``--against`` file and item, and the conflicting-answers group when its prompt has other answers.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from workbench.dedup.decide import REASONS, Decision, decide
from workbench.dedup.engine import DedupConfig, against_features, conflict_findings
from workbench.errors import UsageError, WorkbenchError
from workbench.records import Finding

ProgressFactory = Callable[..., AbstractContextManager[Callable[[int, "int | None"], None]]]
TOP = 10
PREVIEW = 100


def default_paths(first_input: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``data.jsonl`` → ``data.dedup.jsonl`` and ``data.removed.jsonl`` beside it."""
    p = Path(os.fspath(first_input).rstrip("/"))
    stem = p.name.rsplit(".", 1)[0] if p.suffix else p.name
    return p.with_name(f"{stem}.dedup.jsonl"), p.with_name(f"{stem}.removed.jsonl")


@dataclass
class DedupRun:
    """What ``run_files`` did: counts that add up (rows read = kept + removed + rejected by ingest),
    the biggest clusters, findings, and where everything was written."""

    counts: dict[str, int]
    config: DedupConfig
    clusters: int
    biggest: list[dict[str, Any]]
    findings: list[Finding]
    against: list[Any]
    against_removed: dict[str, int]
    stats: dict[str, Any]
    inputs: list[str]
    kept_path: str | None
    removed_path: str | None
    rejects_path: str | None
    report_path: str | None
    dry_run: bool
    seconds: float
    canonical: bool = False
    formats: dict[str, str] = field(default_factory=dict)
    rejects: list[Any] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.counts["rows_read"]

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "clusters": self.clusters,
            "biggest_clusters": self.biggest,
            "findings": [f.to_dict() for f in self.findings],
            "against": [{"path": s.path, "reason": s.reason, "items": len(s.items), "notes": s.notes,
                         "rows_removed": self.against_removed.get(s.path, 0)} for s in self.against],  # fmt: skip
            "stats": dict(self.stats),
            "config": asdict(self.config),
            "outputs": {"kept": self.kept_path, "removed": self.removed_path, "rejects": self.rejects_path,
                        "report": self.report_path, "dry_run": self.dry_run,
                        "rows": "canonical" if self.canonical else "original"},  # fmt: skip
            "formats": dict(self.formats),
            "inputs": self.inputs,
            "seconds": round(self.seconds, 3),
        }


class _Quiet:
    def __call__(self, description: str, total: int | None = None) -> Any:
        import contextlib

        return contextlib.nullcontext(lambda done, total=None: None)


def run_files(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    removed: str | os.PathLike[str] | None = None,
    against: Sequence[str | os.PathLike[str]] = (),
    leak: bool = False,
    config: DedupConfig | None = None,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    report: str | os.PathLike[str] | None = None,
    progress: ProgressFactory | None = None,
    canonical: bool = False,
    workers: int | None = None,
) -> DedupRun:
    """Read ``inputs`` (and ``against`` files), dedup, and write kept, removed (and ingest's rejects,
    if any) atomically; with ``dry_run`` only the report is written. Refuses to overwrite an input.
    Kept and removed rows are the user's own rows unless ``canonical``."""
    from workbench.data.export import format_for
    from workbench.data.ingest import default_rejects_path
    from workbench.dedup import rows as rd
    from workbench.dedup.views import text_view

    started = time.perf_counter()
    if not inputs:
        raise UsageError("no input files", "workbench dedup data.jsonl")
    cfg = config or DedupConfig()
    cfg.validate()
    progress = progress or _Quiet()
    kept_default, removed_default = default_paths(inputs[0])
    kept_path = Path(output) if output else kept_default
    removed_path = Path(removed) if removed else removed_default
    rejects_path = default_rejects_path(kept_path)
    protect = [*inputs, *against]
    from workbench.outputs import guard

    # every output is checked before the long read, so a bad path fails at once
    writes = [] if dry_run else [("-o", kept_path), ("--removed", removed_path), ("rejects file", rejects_path)]
    guard([*writes, ("--report", report)], protect)
    kind = format_for(kept_path)
    sets = []
    if against:
        from workbench.dedup.decontam import load_against

        sets = [load_against(p, leak=leak, view=text_view) for p in against]  # before the long read: fail fast
    ag = against_features(sets, cfg)
    from workbench.dedup import compiled

    if not compiled.ready():  # the first run on this machine compiles the kernels: say so, once
        with progress("compiling the dedup kernels (once per machine, about a minute)"):
            compiled.kernels()
    with progress("reading") as update:
        rows = rd.read([os.fspath(p) for p in inputs], cfg=cfg, format=format, mapping=mapping,
                       ngrams=ag.table if ag else None, workers=workers, on_progress=update)  # fmt: skip
    if not len(rows):  # no empty kept file: say why no row can be used
        from workbench.data.ingest import no_usable_rows

        rd.close(rows)
        raise no_usable_rows([os.fspath(p) for p in inputs], rows.rows_read, Counter(r.reason for r in rows.rejects))
    try:
        with progress("dedup", len(rows)) as update:
            d = decide(rows.features, cfg, rd.grams_fetcher(rows, cfg), rd.conflicts_checker(rows, cfg), ag)
            update(len(rows), len(rows))
        ids = _ids(rows, d, cfg, canonical)
        biggest = _biggest(rows, d, cfg, ids)
        findings = conflict_findings(d, lambda r: str(rows.source(r)), lambda r: str(ids.get(r, "")))
        wrote_rejects = None
        if not dry_run:
            _write(rows, d, sets, ids, kept_path, removed_path, kind, canonical)
            if rows.rejects:
                from workbench.outputs import write_jsonl

                write_jsonl(rejects_path, (r.to_dict() for r in rows.rejects))
                wrote_rejects = str(rejects_path)
    finally:
        rd.close(rows)
    counts = {"rows_read": rows.rows_read, "rejected": len(rows.rejects), **d.counts()}
    assert counts["rows_read"] == counts["kept"] + counts["removed"] + counts["rejected"], counts
    by_file = Counter(sets[int(s)].path for s in d.hit_set[d.hit_set >= 0].tolist())
    stats = {**d.stats, "against_items": len(ag.ref) if ag else 0, "kernels": _kernels_how(), "workers": _workers(rows)}
    run = DedupRun(
        counts, cfg, len(d.cluster_rows), biggest, findings, sets, dict(by_file), stats, [os.fspath(p) for p in inputs],
        None if dry_run else str(kept_path), None if dry_run else str(removed_path), wrote_rejects,
        str(report) if report else None, dry_run, time.perf_counter() - started, canonical, rows.formats, rows.rejects,
    )  # fmt: skip
    if report:
        from workbench.outputs import atomic_text

        with atomic_text(report) as fh:
            json.dump(run.to_dict(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
    return run


def _kernels_how() -> str:
    from workbench.dedup.minhash import kernels

    return str(kernels().how)


def _workers(rows: Any) -> int:
    return int(getattr(rows, "n_workers", 1))


def _ids(rows: Any, d: Decision, cfg: DedupConfig, canonical: bool) -> dict[int, Any]:
    """Ids of the rows the outputs name: kept rows of clusters, first rows of conflict groups. A row's
    own ``id`` field when it has one (unless ``canonical``), else its content hash."""
    want = sorted({*d.cluster_rows.tolist(), *(g[0] for g in d.conflicts)})
    if not want:
        return {}
    return dict(zip(want, rows.fetch(np.array(want, np.int64), "ids", "hash" if canonical else "own", cfg)))


def _biggest(rows: Any, d: Decision, cfg: DedupConfig, ids: dict[int, Any]) -> list[dict[str, Any]]:
    if not len(d.cluster_rows):
        return []
    top = np.lexsort((np.arange(len(d.cluster_size)), -d.cluster_size))[:TOP]
    keepers = d.cluster_rows[top]
    texts = rows.fetch(keepers, "texts", cfg.on, cfg)
    out = []
    for c, k, text in zip((top + 1).tolist(), keepers.tolist(), texts):
        members = (d.cluster == c) & ~d.kept
        reasons = Counter(REASONS[int(r)] for r in d.reason[members].tolist())
        out.append({"cluster": c, "size": int(d.cluster_size[c - 1]), "reasons": dict(reasons), "kept_id": ids.get(k),
                    "kept_source": str(rows.source(k)), "preview": " ".join(text.split())[:PREVIEW]})  # fmt: skip
    return out


def _info(rows: Any, d: Decision, sets: Sequence[Any], ids: dict[int, Any], i: int) -> dict[str, Any]:
    """The ``removed`` object of row ``i``."""
    hs, k = int(d.hit_set[i]), int(d.kept_row[i])
    return {
        "reason": REASONS[int(d.reason[i])],
        "cluster": int(d.cluster[i]) or None,
        "kept_id": ids.get(k) if k >= 0 else None,
        "kept_source": str(rows.source(k)) if k >= 0 else None,
        "similarity": round(float(d.similarity[i]), 4),
        "against_file": sets[hs].path if hs >= 0 else None,
        "against_item": sets[hs].items[int(d.hit_item[i])].id if hs >= 0 else None,
        "row": i,
        "source": str(rows.source(i)),
        "detail": d.detail.get(i, ""),
        "conflict": d.conflict_of.get(i),
    }


def _write(rows: Any, d: Decision, sets: Sequence[Any], ids: dict[int, Any], kept_path: Path, removed_path: Path,
           kind: str, canonical: bool) -> None:  # fmt: skip
    """Kept and removed files, each to a temporary name, both renamed only when both are complete."""
    from workbench.outputs import atomic_path, write_error

    kept = np.nonzero(d.kept)[0]
    gone = np.nonzero(~d.kept)[0]
    with atomic_path(kept_path) as tmp_kept, atomic_path(removed_path) as tmp_removed:
        try:
            _write_kept(rows, kept, tmp_kept, kind, canonical)
        except OSError as e:  # name the kept file: the removed file's block sees the error first
            raise write_error(kept_path, e) from None
        with open(tmp_removed, "wb") as fh:
            for i in gone.tolist():
                info = _info(rows, d, sets, ids, i)
                fh.write(_removed_line(rows, i, info, canonical))


def _write_kept(rows: Any, kept: np.ndarray, tmp_kept: Path, kind: str, canonical: bool) -> None:
    if canonical:
        from workbench.data.export import write_conversations

        write_conversations(tmp_kept, (rows.conversation(int(i)) for i in kept), kind)
    elif kind == "jsonl":
        with open(tmp_kept, "wb") as fh:
            _copy_lines(rows, kept, fh)
    else:
        _write_table(tmp_kept, [rows.value(int(i)) for i in kept], kind)


def _removed_line(rows: Any, i: int, info: dict[str, Any], canonical: bool) -> bytes:
    if canonical:
        return (json.dumps(rows.conversation(i).to_dict() | {"removed": info}, ensure_ascii=False) + "\n").encode()
    raw = rows.raw(i)
    tail = json.dumps(info, ensure_ascii=False).encode()
    if raw is not None:
        body = raw.rstrip()
        if body.endswith(b"}"):  # the user's line with one key added: nothing else of it re-serialised
            return body[:-1].rstrip() + b', "removed": ' + tail + b"}\n"
    value = rows.value(i)
    return (json.dumps({**value, "removed": info}, ensure_ascii=False, default=str) + "\n").encode()


def _copy_lines(rows: Any, kept: np.ndarray, fh: BinaryIO) -> None:
    """Kept rows as their input bytes: each JSONL file is read once in large blocks, and each run of
    adjacent kept lines is written as one slice of a block."""
    import codecs

    block_bytes = 64 << 20
    t, start, end = rows.table[kept].tolist(), rows.start[kept].tolist(), rows.end[kept].tolist()
    k, n = 0, len(kept)
    while k < n:
        ti = t[k]
        table = rows.tables[ti]
        if table.path is None:  # held rows: their original columns as one JSON object
            fh.write((json.dumps(table.held[start[k]][0], ensure_ascii=False, default=str) + "\n").encode())
            k += 1
            continue
        stop = k
        while stop < n and t[stop] == ti:
            stop += 1
        with open(table.path, "rb") as src:
            while k < stop:
                lo, e = start[k], k + 1
                while e < stop and end[e] - lo <= block_bytes:
                    e += 1
                block = memoryview(os.pread(src.fileno(), end[e - 1] - lo, lo))
                r = k
                while r < e:  # runs of adjacent lines inside the block
                    q = r + 1
                    while q < e and start[q] == end[q - 1]:
                        q += 1
                    a, b = start[r] - lo, end[q - 1] - lo
                    if start[r] == 0 and block[a : a + 3] == codecs.BOM_UTF8:
                        a += 3
                    fh.write(block[a:b])
                    if block[b - 1 : b] != b"\n":  # the file's last line had no newline
                        fh.write(b"\n")
                    r = q
                k = e


def _write_table(path: Path, values: list[Any], kind: str) -> None:
    """Original rows as Parquet or an HF dataset directory (columns as the user named them)."""
    try:
        if kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(values), path)
        else:
            import datasets

            datasets.Dataset.from_list(values).save_to_disk(str(path))
    except Exception as e:  # pyarrow cannot type columns whose values change type from row to row
        from workbench.errors import first_line

        raise WorkbenchError(f"cannot write the kept rows as {kind}: {first_line(e)}",
                             "write .jsonl (rows kept as they are), or pass --canonical for canonical messages") from None  # fmt: skip
