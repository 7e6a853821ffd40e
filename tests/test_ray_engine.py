"""`workbench dedup --engine ray`: its stages reproduce the local engine's kept and removed rows byte for byte
(run here partition by partition, as Ray's map_groups would), its outputs are guarded like the local engine's, and
(slow, with Ray installed) a real local Ray gives the local engine's kept set on bench/gen_dedup.py's 100k corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.dedup_gen import corpus
from workbench.dedup import DedupConfig, run_files
from workbench.dedup import ray_engine as re_
from workbench.dedup import ray_stages as st
from workbench.dedup.ray_io import _ingest_blocks, check_output_dir, resolve_inputs
from workbench.errors import UsageError, WorkbenchError

REPO = Path(__file__).resolve().parent.parent


def write_corpus(path: Path, n: int, seed: int) -> Path:
    """Planted exact and near duplicates as canonical rows, plus lines ingest rejects."""
    p = corpus(n, seed=seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i, text in enumerate(p.texts):
            words = text.split(" ")
            fh.write(json.dumps({"messages": [{"role": "user", "content": " ".join(words[:12])},
                                              {"role": "assistant", "content": " ".join(words[12:])}]}) + "\n")  # fmt: skip
            if i == 40:
                fh.write("{not json\n")
            if i == 90:
                fh.write(json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}) + "\n")
    return path


def batches(files: list[Path], on: str) -> dict[str, np.ndarray]:
    """What the datasource yields for ``files``, as one numpy batch."""
    import pyarrow as pa

    from workbench.data import ingest
    from workbench.dedup.views import text_view

    tables = [t for i, f in enumerate(files) for t in _ingest_blocks(ingest.stream([str(f)]), i, str(f), str(f), on, text_view, pa, block=500)]
    d = pa.concat_tables(tables).to_pydict()
    return {k: np.array(v, dtype=object if k in ("id", "text", "row", "reject") else np.int64) for k, v in d.items()}


def staged(rows: dict[str, np.ndarray], cfg: DedupConfig, parts: int) -> tuple[list[str], list[str]]:
    """The Ray engine's stages, each group-wise stage run partition by partition (what map_groups guarantees)."""
    meta = st.sign(rows, cfg)

    def by_part(batch: dict[str, np.ndarray], fn: Any, **kw: Any) -> dict[str, np.ndarray]:
        outs = [fn({k: v[batch["part"] == p] for k, v in batch.items()}, **kw) for p in np.unique(batch["part"])]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs else {}

    dups = by_part(st.exact_rows(meta, parts), st.exact_groups, keep=cfg.keep)
    pairs = by_part(st.explode(meta, np.sort(dups["key"]), parts), st.bucket_pairs, keep=cfg.keep, cap=cfg.bucket_cap)
    pairs = by_part(st.with_part(pairs, "a", parts), st.unique_pairs)
    t = st.texts(rows)
    text, ids = dict(zip(t["key"], t["text"])), dict(zip(t["key"], t["id"]))
    joined = pairs | {k: np.array([m[x] for x in pairs[c]], dtype=object) for k, m, c in (("ta", text, "a"), ("tb", text, "b"), ("ida", ids, "a"), ("idb", ids, "b"))}
    edges = st.verify(joined, cfg)
    counts = st.file_counts(rows)
    base = np.concatenate([[0], np.cumsum(counts["accepted"])[:-1]]).astype(np.int64)
    d = st.decide(dups, edges, cfg.keep, base)
    src = st.keeper_sources(rows, d.clusters)
    d.kept_source = {int(k): str(v) for k, v in zip(src["key"], src["src"])}
    lab = st.label(rows, d)
    kept = [line for kind, line in zip(lab["kind"], lab["line"]) if kind == "kept"]
    removed = [line for kind, line in zip(lab["kind"], lab["line"]) if kind == "removed"]
    return kept, removed


def without_conflicts(lines: list[str]) -> list[dict]:
    """Removed rows with the conflicting-answers group left out: the Ray engine does not look for them."""
    rows = [json.loads(x) for x in lines]
    for r in rows:
        r["removed"].pop("conflict")
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ray")
    return [write_corpus(root / "a.jsonl", 1500, seed=3), write_corpus(root / "b.jsonl", 700, seed=4)]


@pytest.mark.parametrize(("keep", "on", "parts"), [("first", "conversation", 3), ("longest", "conversation", 5), ("shortest", "response", 1)])
def test_the_stages_write_the_local_engines_kept_and_removed_rows(data: list[Path], tmp_path: Path, keep: str, on: str, parts: int) -> None:
    cfg = DedupConfig(keep=keep, on=on)
    local = run_files([str(f) for f in data], output=tmp_path / "k.jsonl", removed=tmp_path / "r.jsonl", config=cfg, canonical=True)
    assert local.counts["exact"] and local.counts["near"] and local.rejected == 4
    kept, removed = staged(batches(data, on), cfg, parts)
    assert kept == (tmp_path / "k.jsonl").read_text().splitlines()
    assert without_conflicts(removed) == without_conflicts((tmp_path / "r.jsonl").read_text().splitlines())  # reason, cluster, kept id and source, similarity, row


def test_no_duplicates_means_every_row_is_kept(data: list[Path]) -> None:
    rows = batches(data[1:], "conversation")
    empty = {"key": np.zeros(0, np.int64), "rep": np.zeros(0, np.int64), "rep_id": np.zeros(0, object)}
    edges = {c: np.zeros(0, object if c.startswith("id") else np.int64) for c in ("a", "b", "la", "lb", "ida", "idb", "sim")}
    d = st.decide(empty, edges, "first", np.zeros(1, np.int64))
    lab = st.label(rows, d)
    assert list(lab["kind"]).count("kept") == int((rows["acc"] >= 0).sum()) and "removed" not in list(lab["kind"])


def test_rows_carry_their_source_and_rejects_their_reason(data: list[Path]) -> None:
    rows = batches(data[:1], "conversation")
    rejects = [json.loads(r) for r in rows["reject"] if r]
    assert [(r["line"], r["reason"]) for r in rejects] == [(42, "malformed_json"), (93, "unknown_role")]
    assert json.loads(rows["row"][0])["source"] == f"{data[0]}:1" and rows["acc"][0] == 0
    assert list(rows["acc"][rows["acc"] >= 0]) == list(range(int((rows["acc"] >= 0).sum())))


def test_a_directory_input_adds_its_data_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("b.jsonl", "a.jsonl", "notes.txt"):
        (tmp_path / "d" / name).write_text("{}\n")
    (tmp_path / "x.jsonl").write_text("{}\n")
    files = resolve_inputs([str(tmp_path / "x.jsonl"), str(tmp_path / "d")])
    assert [Path(f).name for f in files] == ["x.jsonl", "a.jsonl", "b.jsonl"]
    with pytest.raises(WorkbenchError, match="no such file"):
        resolve_inputs([str(tmp_path / "missing.jsonl")])


def test_sharded_outputs_never_replace_inputs_or_other_files(tmp_path: Path) -> None:
    src = tmp_path / "in" / "data.jsonl"
    src.parent.mkdir()
    src.write_text("{}\n")
    with pytest.raises(UsageError, match="directory of JSONL shards"):
        check_output_dir(str(tmp_path / "kept.jsonl"), [str(src)], "-o")
    with pytest.raises(WorkbenchError, match="holds the input"):
        check_output_dir(str(tmp_path / "in"), [str(src)], "-o")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("x")
    with pytest.raises(WorkbenchError, match="holds notes.md"):
        check_output_dir(str(tmp_path / "mine"), [str(src)], "-o")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "part-00000.jsonl").write_text("{}\n")
    check_output_dir(str(tmp_path / "old"), [str(src)], "-o")  # a previous run's shards may be replaced


def test_without_ray_the_engine_is_one_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(re_, "available", lambda: False)
    src = write_corpus(tmp_path / "d.jsonl", 50, seed=1)
    with pytest.raises(WorkbenchError, match=r'\.\[distributed\]'):
        re_.run_ray([str(src)])
    with pytest.raises(UsageError, match="--against"):
        re_.run_ray([str(src)], against=[str(src)])


def test_cli_engine_flags_are_checked(tmp_path: Path) -> None:
    src = write_corpus(tmp_path / "d.jsonl", 30, seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["--engine", "spark"], ["--workers", "2"]):
        res = subprocess.run([sys.executable, "-m", "workbench", "dedup", str(src), *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


# --- a real local Ray --------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_keeps_what_the_local_engine_keeps_on_the_100k_corpus(tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    src = tmp_path / "dedup100k.jsonl"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_dedup.py"), "--rows", "100000", "--out", str(src)], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)  # fmt: skip
    local = run_files([str(src)], output=tmp_path / "k.jsonl", removed=tmp_path / "r.jsonl", canonical=True)
    ray_run = re_.run_ray([str(src)], output=str(tmp_path / "kept"), removed=str(tmp_path / "removed"), workers=2)
    shards = sorted((tmp_path / "kept").glob("part-*.jsonl"))
    kept = [line for f in shards for line in f.read_text().splitlines()]
    assert len(shards) > 1  # written as a sharded dataset
    assert kept == (tmp_path / "k.jsonl").read_text().splitlines()
    removed = [line for f in sorted((tmp_path / "removed").glob("part-*.jsonl")) for line in f.read_text().splitlines()]
    assert without_conflicts(removed) == without_conflicts((tmp_path / "r.jsonl").read_text().splitlines())
    assert ray_run.counts == local.counts
    assert ray_run.to_dict()["clusters"] == local.clusters
    assert ray_run.to_dict()["biggest_clusters"] == local.to_dict()["biggest_clusters"]
