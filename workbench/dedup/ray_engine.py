"""`workbench dedup --engine ray`: the local engine's exact + MinHash LSH dedup as Ray Data stages, for corpora
past one machine. Same kernels (``minhash``), same keep policy, same star clusters, so the same kept set.

The stages, each a function over numpy batches (``map_batches``) or over whole hash partitions (``map_groups`` on
a partition column, so one call handles many groups with the numba kernels):

1. read: each input file is ingested by ``workbench.data.ingest`` in its own read task (``ray_io``);
2. sign: exact keys, word counts and the 16 LSH band hashes of each row's compared text (``minhash.scan_texts``);
3. exact: rows grouped by exact key (partitioned by it); the keep policy picks each group's representative;
4. candidates: each representative's band hashes, partitioned by hash; a bucket pairs its first ``bucket_cap``
   rows in priority order with the rest (``minhash.candidate_pairs``); pairs made unique;
5. verify: both texts joined onto each pair; exact Jaccard of the shingle sets (``minhash.exact_jaccard``);
6. clusters: the verified edges (few next to the rows) come to the driver, which walks them in priority order
   (``minhash.greedy_stars``) exactly as the local engine does;
7. write: every row labelled kept, removed (reason, cluster, kept row, similarity) or rejected, and written as
   sharded JSONL directories in input order.

The driver holds the duplicates only (removed rows' keys and their kept rows), never the corpus.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.dedup.engine import REASONS, DedupConfig
from workbench.dedup.files import DedupRun
from workbench.dedup.ray_io import check_output_dir, is_url, make_sink, make_source, resolve_inputs
from workbench.dedup.ray_stages import (
    Decisions, bucket_pairs, decide, exact_groups, exact_rows, explode, file_counts, keeper_sources, label, sign, texts, unique_pairs,
    verify, with_part,
)  # fmt: skip
from workbench.errors import UsageError, WorkbenchError

EXTRA = "distributed"


@dataclass
class RayDedupRun(DedupRun):
    """A DedupRun from the Ray engine: kept and removed rows are canonical, in directories of shards."""

    workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["engine"] = {"name": "ray", "workers": self.workers}
        return d


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None


def _init_local(cpus: int, code: str, tries: int = 3) -> None:
    """Start a private local Ray on ``cpus`` CPUs whose workers import this workbench.

    Ray's raylet gives its agents (Python processes) about 30 s to come up and gives up when they are slower, which
    a busy machine makes them; a second start finds their imports in the page cache."""
    import ray

    env = {"PYTHONPATH": os.pathsep.join(x for x in (code, os.environ.get("PYTHONPATH")) if x)}
    for attempt in range(tries):
        try:
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False, runtime_env={"env_vars": env},
                     _system_config={"enable_worker_prestart": False})  # fewer processes racing the agents at start  # fmt: skip
            return
        except Exception as e:  # Ray raises a bare Exception when its node does not come up
            if "timed out during startup" not in str(e) or attempt == tries - 1:
                raise WorkbenchError(f"a local Ray did not start: {str(e).splitlines()[0]}",
                                     "retry when the machine is less busy, or start Ray yourself (ray start --head) and set RAY_ADDRESS") from None  # fmt: skip
            ray.shutdown()


def start(workers: int | None = None) -> tuple[bool, int]:
    """Connect to the cluster ``RAY_ADDRESS`` names, or start a local Ray on ``workers`` CPUs (default: all).
    Returns (whether this call started it, CPUs the cluster offers)."""
    if not available():
        raise WorkbenchError("--engine ray needs Ray Data, which is not installed", f'pip install -e ".[{EXTRA}]"  (or pip install "ray[data]")')
    import ray

    started = False
    if not ray.is_initialized():
        package = Path(__file__).resolve().parents[1]  # this workbench, to ship to Ray's workers
        if os.environ.get("RAY_ADDRESS"):
            if workers:
                raise UsageError("--workers with RAY_ADDRESS: the cluster decides its workers", "unset RAY_ADDRESS for a local Ray, or drop --workers")
            # the cluster's workers import workbench from the code shipped with the job
            ray.init(runtime_env={"py_modules": [str(package)]}, logging_level="WARNING")
        else:
            _init_local(workers or os.cpu_count() or 1, str(package.parent))
        started = True
    return started, int(ray.cluster_resources().get("CPU", 1))


# --- the run --------------------------------------------------------------------------------------


def _collect(ds: Any, cols: Sequence[str]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for c in cols:
            parts[c].append(np.asarray(batch[c]))
    return {c: np.concatenate(v) if v else np.zeros(0, object if c.endswith("id") else np.int64) for c, v in parts.items()}


def dedup_ray(files: list[str], cfg: DedupConfig, *, format: str | None, mapping: dict[str, str] | None, parts: int) -> tuple[Any, Decisions, dict[str, Any]]:
    """Steps 1-6 on a running Ray: the materialised rows, the decisions, and counts."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # shards come out in input order
    ctx.enable_progress_bars = sys.stderr.isatty()  # Ray's own bars, on a terminal only; its notices never
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    rows = ray.data.read_datasource(make_source(files, on=cfg.on, format=format, mapping=mapping)).materialize()
    counts = _collect(rows.map_batches(file_counts, batch_format="numpy"), ["file", "accepted", "rejected"])
    accepted = np.bincount(counts["file"], weights=counts["accepted"], minlength=len(files)).astype(np.int64)
    rejected = int(counts["rejected"].sum())
    base = np.concatenate([[0], np.cumsum(accepted)[:-1]]).astype(np.int64)
    meta = rows.map_batches(sign, fn_kwargs={"cfg": cfg}, batch_format="numpy").materialize()

    dups = {"key": np.zeros(0, np.int64), "rep": np.zeros(0, np.int64), "rep_id": np.zeros(0, object)}
    if cfg.exact:
        grouped = meta.map_batches(exact_rows, fn_kwargs={"parts": parts}, batch_format="numpy").groupby("part", num_partitions=parts)
        dups = _collect(grouped.map_groups(exact_groups, fn_kwargs={"keep": cfg.keep}, batch_format="numpy"), ["key", "rep", "rep_id"])
    edges = {c: np.zeros(0, object if c.startswith("id") else np.float64 if c == "sim" else np.int64) for c in ("a", "b", "la", "lb", "ida", "idb", "sim")}
    n_cand = 0
    if cfg.near:
        exploded = meta.map_batches(explode, fn_kwargs={"dups": np.sort(dups["key"]), "parts": parts}, batch_format="numpy")
        pairs = (exploded.groupby("part", num_partitions=parts)
                 .map_groups(bucket_pairs, fn_kwargs={"keep": cfg.keep, "cap": cfg.bucket_cap}, batch_format="numpy")
                 .map_batches(with_part, fn_kwargs={"col": "a", "parts": parts}, batch_format="numpy")
                 .groupby("part", num_partitions=parts).map_groups(unique_pairs, batch_format="numpy").materialize())  # fmt: skip
        n_cand = pairs.count()
        if n_cand:
            t = rows.map_batches(texts, batch_format="numpy")
            ta = t.rename_columns({"key": "a", "id": "ida", "text": "ta"})
            tb = t.rename_columns({"key": "b", "id": "idb", "text": "tb"})
            joined = pairs.join(ta, "inner", parts, on=("a",)).join(tb, "inner", parts, on=("b",))
            edges = _collect(joined.map_batches(verify, fn_kwargs={"cfg": cfg}, batch_format="numpy"), list(edges))
    d = decide(dups, edges, cfg.keep, base)
    if len(d.clusters):  # the kept rows' sources, for the removed rows that name them
        found = _collect(rows.map_batches(keeper_sources, fn_kwargs={"clusters": d.clusters}, batch_format="numpy"), ["key", "src"])
        d.kept_source = {int(k): str(v) for k, v in zip(found["key"], found["src"])}
    n_near = int(d.near.sum())
    stats = {"accepted": int(accepted.sum()), "rejected": rejected, "candidate_pairs": int(n_cand),
             "verified_pairs": len(edges["a"]), "exact": len(d.key) - n_near, "near": n_near}  # fmt: skip
    return rows, d, stats


def _top_clusters(d: Decisions, found: dict[int, str], on: str, top: int = 10) -> list[dict[str, Any]]:
    """The biggest clusters as ``run_files`` reports them: number, size, reasons, the kept row and a preview."""
    import json

    from workbench.dedup.files import PREVIEW
    from workbench.dedup.views import text_view
    from workbench.records import Conversation, Message, Source

    keys, sizes = np.unique(d.kept, return_counts=True)
    best = sorted(range(len(keys)), key=lambda i: (-sizes[i], i))[:top]
    out = []
    for i in best:
        row = json.loads(found[int(keys[i])])
        conv = Conversation(row["id"], tuple(Message(m["role"], m["content"]) for m in row["messages"]), Source(row["source"]), row.get("meta") or {})
        near = d.near[d.kept == keys[i]]
        reasons = {r: int(n) for r, n in (("exact", (~near).sum()), ("near", near.sum())) if n}
        out.append({"cluster": int(np.searchsorted(d.clusters, keys[i])) + 1, "size": int(sizes[i]) + 1, "reasons": reasons,
                    "kept_id": row["id"], "kept_source": row["source"], "preview": " ".join(text_view(conv, on).split())[:PREVIEW]})  # fmt: skip
    return out


def run_ray(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    removed: str | os.PathLike[str] | None = None,
    against: Sequence[str | os.PathLike[str]] = (),
    config: DedupConfig | None = None,
    format: str | None = None,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    report: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> RayDedupRun:
    """`workbench dedup --engine ray`: dedup ``inputs`` on Ray; kept, removed (and rejected) rows as directories
    of JSONL shards, written atomically on local disks; the summary as ``run_files`` gives it."""
    import contextlib
    import json

    from workbench.outputs import atomic_path, atomic_text

    started_at = time.perf_counter()
    cfg = config or DedupConfig()
    cfg.validate()
    if against:
        raise UsageError("--against is not supported with --engine ray yet", "decontaminate with the local engine (workbench dedup --against) after this")
    if not inputs:
        raise UsageError("no input files", "workbench dedup --engine ray data/*.jsonl")
    files = resolve_inputs(inputs)
    first = os.fspath(inputs[0]).rstrip("/")
    stem = first.rsplit("/", 1)[-1].rsplit(".", 1)[0] if Path(first).suffix else first.rsplit("/", 1)[-1]
    where = first.rsplit("/", 1)[0] + "/" if "/" in first else ""
    kept_dir = os.fspath(output) if output else f"{where}{stem}.dedup"
    removed_dir = os.fspath(removed) if removed else f"{where}{stem}.removed"
    rejects_dir = kept_dir.rstrip("/") + ".rejects"
    if not dry_run:
        for path, flag in ((kept_dir, "-o"), (removed_dir, "--removed"), (rejects_dir, "rejects")):
            check_output_dir(path, files, flag)
        if os.path.realpath(kept_dir) == os.path.realpath(removed_dir):
            raise UsageError("the kept and removed outputs are the same directory", "give -o and --removed different paths")
    started, cpus = start(workers)
    parts = max(2, 2 * cpus)
    try:
        rows, d, stats = dedup_ray(files, cfg, format=format, mapping=mapping, parts=parts)
        keys = np.unique(d.kept)
        sizes = np.unique(d.kept, return_counts=True)[1]
        wanted = {int(keys[i]) for i in sorted(range(len(keys)), key=lambda i: (-sizes[i], i))[:10]}
        labelled = rows.map_batches(label, fn_kwargs={"d": d}, batch_format="numpy")
        with contextlib.ExitStack() as stack:
            dirs: dict[str, str | None] = {"kept": None, "removed": None, "rejected": None}
            if not dry_run:
                for kind, path in (("kept", kept_dir), ("removed", removed_dir), ("rejected", rejects_dir)):
                    if kind == "rejected" and not stats["rejected"]:
                        continue
                    if is_url(path):
                        dirs[kind] = path  # object stores have no rename: shards are written in place
                        continue
                    tmp = stack.enter_context(atomic_path(path))
                    tmp.mkdir(parents=True)
                    dirs[kind] = str(tmp)
            sink = make_sink(dirs, wanted)
            labelled.write_datasink(sink)
        found: dict[int, str] = {}
        for r in sink.returns:
            found.update({int(k): v for k, v in r["found"].items()})
    finally:
        if started:
            import ray

            ray.shutdown()
    n_removed = len(d.key)
    counts = {"rows_read": stats["accepted"] + stats["rejected"], "rejected": stats["rejected"], "read": stats["accepted"],
              "kept": stats["accepted"] - n_removed, "removed": n_removed,
              **{r: 0 for r in REASONS}, "exact": stats["exact"], "near": stats["near"]}  # fmt: skip
    run = RayDedupRun(
        counts=counts, config=cfg, clusters=len(d.clusters), biggest=_top_clusters(d, found, cfg.on), findings=[],
        against=[], against_removed={}, stats={"candidate_pairs": stats["candidate_pairs"], "verified_pairs": stats["verified_pairs"],
                                             "against_items": 0, "clusters": len(d.clusters)},
        inputs=[os.fspath(p) for p in inputs], kept_path=None if dry_run else kept_dir,
        removed_path=None if dry_run else removed_dir, rejects_path=rejects_dir if stats["rejected"] and not dry_run else None,
        report_path=os.fspath(report) if report else None, dry_run=dry_run, seconds=time.perf_counter() - started_at,
        canonical=True, workers=cpus,
    )  # fmt: skip
    if report:
        with atomic_text(report) as fh:
            json.dump(run.to_dict(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
    return run
