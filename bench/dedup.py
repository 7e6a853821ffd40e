"""Race `workbench dedup` against datasketch (plain and bulk), rensa and exact hashing on one corpus.

    .venv/bin/python bench/gen_dedup.py --rows 100000 --out /tmp/dedup100k.jsonl
    .venv/bin/python bench/dedup.py /tmp/dedup100k.jsonl [--plain-sample 20000] [--threads 2] [--e2e]
    .venv/bin/python bench/dedup.py /tmp/dedup100k.jsonl --only none --engine ray   # Ray Data, 1 and 2 workers

Every tool sees the same texts (each row's user + assistant turns), 128 permutations, 5-word
shingles, threshold 0.8, and is scored on the same planted truth: a row should be removed iff it is
an exact or J >= 0.8 copy of an earlier row of its planted group. The baselines flag a row when an
LSH candidate inserted before it has estimated Jaccard >= 0.8 (the usual way to use them);
workbench verifies candidates with exact Jaccard. Each tool runs in a forked child of this one
process, so its peak memory (VmHWM, reset at the start) is its own: "peak MB" is the peak resident
memory beyond what the loaded corpus already held. docs/s exclude JSON parsing (reported apart).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NUM_PERM, NGRAM, THRESHOLD = 128, 5, 0.8
WORD = re.compile(r"[a-z0-9\x80-\uffff]+")


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def expected(group: np.ndarray, kind: np.ndarray, jac: np.ndarray, rows: np.ndarray) -> set[int]:
    """Rows (positions in ``rows``) a keep-first dedup of ``rows`` must remove."""
    first: set[int] = set()
    out: set[int] = set()
    for pos, i in enumerate(rows):
        g, k = int(group[i]), int(kind[i])
        if g < 0 or not (k in (0, 1) or (k == 2 and jac[i] >= THRESHOLD)):
            continue
        if g in first:
            out.add(pos)
        else:
            first.add(g)
    return out


def shingles(text: str) -> set[bytes]:
    words = WORD.findall(text.lower())
    if len(words) < NGRAM:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + NGRAM]).encode() for i in range(len(words) - NGRAM + 1)}


# --- the contestants: each takes texts, returns the set of removed positions -----------------------


def run_workbench(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    from workbench.dedup.engine import DedupConfig, dedup

    res = dedup(convs, config=DedupConfig(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM))
    return {r.row for r in res.removed}


def run_workbench_engine(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    """The engine alone on plain strings: exact keys, MinHash + 16x8 bands, candidates, exact Jaccard, stars."""
    from workbench.dedup import minhash as mh

    scan = mh.scan_texts(texts, ngram=NGRAM, num_perm=NUM_PERM)
    n = len(texts)
    k = scan.exact
    order = np.lexsort((np.arange(n), k[:, 1], k[:, 0]))
    new = np.ones(n, bool)
    new[1:] = (k[order][1:] != k[order][:-1]).any(axis=1)
    rep = np.empty(n, np.int64)
    rep[order] = order[np.maximum.accumulate(np.where(new, np.arange(n), 0))]
    nodes = np.nonzero(rep == np.arange(n))[0]
    pi, pj, _ = mh.candidate_pairs(scan.bands[nodes], 32)
    grams = mh.gram_sets(*mh.pack([texts[int(i)] for i in nodes]), NGRAM, True)
    keeper, _, _ = mh.stars(len(nodes), pi, pj, grams, np.arange(len(nodes)), np.ones(len(nodes), bool), THRESHOLD)
    removed = {int(nodes[k]) for k in np.nonzero(keeper != np.arange(len(nodes)))[0]}
    return removed | {i for i in range(n) if rep[i] != i}


def run_exact_hash(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    seen: set[bytes] = set()
    out = set()
    for i, t in enumerate(texts):
        h = hashlib.md5(" ".join(t.lower().split()).encode()).digest()
        if h in seen:
            out.add(i)
        seen.add(h)
    return out


def _lsh_flag(sketches: list, lsh_insert: Callable, lsh_query: Callable, jaccard: Callable) -> set[int]:  # type: ignore[type-arg]
    out = set()
    for i, m in enumerate(sketches):
        if any(jaccard(m, sketches[j]) >= THRESHOLD for j in lsh_query(m)):
            out.add(i)
        lsh_insert(i, m)
    return out


def run_datasketch_plain(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    sketches = []
    for t in texts:
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch(list(shingles(t)))
        sketches.append(m)
    return _lsh_flag(sketches, lsh.insert, lsh.query, lambda a, b: a.jaccard(b))


def run_datasketch_bulk(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    sketches = [LeanMinHash(m) for m in MinHash.bulk([list(shingles(t)) for t in texts], num_perm=NUM_PERM)]
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for i, m in enumerate(sketches):
            session.insert(i, m, check_duplication=False)
    # the index holds every row; a row is a duplicate if a candidate before it is similar enough
    out = set()
    for i, m in enumerate(sketches):
        if any(j < i and m.jaccard(sketches[j]) >= THRESHOLD for j in lsh.query(m)):
            out.add(i)
    return out


def run_rensa(texts: list[str], convs: list) -> set[int]:  # type: ignore[type-arg]
    from rensa import RMinHash, RMinHashLSH

    sketches = []
    for t in texts:
        m = RMinHash(num_perm=NUM_PERM, seed=42)
        m.update([s.decode() for s in shingles(t)])
        sketches.append(m)
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=16)
    return _lsh_flag(sketches, lsh.insert, lsh.query, lambda a, b: a.jaccard(b))


CONTESTANTS = {
    "workbench dedup()": run_workbench,
    "workbench engine": run_workbench_engine,
    "exact hash (md5)": run_exact_hash,
    "rensa RMinHash+LSH 16b": run_rensa,
    "datasketch bulk": run_datasketch_bulk,
    "datasketch plain": run_datasketch_plain,
}


def _child(name: str, rows: np.ndarray, q: mp.Queue, threads: int) -> None:  # type: ignore[type-arg]
    import numba

    numba.set_num_threads(threads)
    texts = [TEXTS[i] for i in rows]
    convs = [CONVS[i] for i in rows] if name.startswith("workbench dedup") else []
    base = _status("VmRSS:")
    _reset_peak()
    t = time.perf_counter()
    try:
        removed = CONTESTANTS[name](texts, convs)
    except BaseException as e:  # report, don't leave the parent waiting
        q.put(repr(e))
        raise
    dt = time.perf_counter() - t
    q.put((dt, _status("VmHWM:") - base, sorted(removed)))


TEXTS: list[str] = []
CONVS: list = []  # type: ignore[type-arg]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--plain-sample", type=int, default=20_000, help="rows for plain datasketch (it is slow)")
    ap.add_argument("--sample", type=int, default=0, help="rows for the other baselines (0: all)")
    ap.add_argument("--threads", type=int, default=2, help="numba threads for workbench")
    ap.add_argument("--only", default="", help="comma-separated contestant name prefixes")
    ap.add_argument("--e2e", action="store_true", help="also time run_files: parse, dedup, write (like the CLI)")
    ap.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="ray: also race `dedup --engine ray` (1 and 2 workers) against the local engine, end to end")
    args = ap.parse_args()

    from workbench.data import ingest
    from workbench.dedup import text_view

    truth = np.load(f"{args.corpus}.truth.npz")
    group, kind, jac = truth["group"], truth["kind"], truth["jaccard"]
    t = time.perf_counter()
    data = ingest.load([args.corpus])
    load_s = time.perf_counter() - t
    CONVS.extend(data.conversations)
    TEXTS.extend(text_view(c, "conversation") for c in data.conversations)
    n = len(TEXTS)
    print(f"corpus {args.corpus}: {n} rows, {sum(map(len, TEXTS)) / n:.0f} chars/row; ingest.load {load_s:.1f}s "
          f"({n / load_s:,.0f} rows/s); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    print(f"{'tool':<24}{'rows':>9}{'seconds':>9}{'docs/s':>10}{'peak MB':>9}{'precision':>10}{'recall':>8}", flush=True)
    ctx = mp.get_context("fork")
    for name in CONTESTANTS:
        if args.only and not any(name.startswith(p.strip()) for p in args.only.split(",")):
            continue
        m = min(n, args.plain_sample) if name == "datasketch plain" else (min(n, args.sample) if args.sample and not name.startswith("workbench") else n)
        rows = np.arange(m)
        q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        p = ctx.Process(target=_child, args=(name, rows, q, args.threads))
        p.start()
        got_back = None
        while got_back is None:
            try:
                got_back = q.get(timeout=5)
            except Exception:
                if not p.is_alive():
                    got_back = f"died with exit code {p.exitcode}"
        p.join()
        if isinstance(got_back, str):
            print(f"{name:<24}{m:>9}  failed: {got_back}", flush=True)
            continue
        dt, peak, removed = got_back
        exp = expected(group, kind, jac, rows)
        got = set(removed)
        tp = len(exp & got)
        prec = tp / len(got) if got else 1.0
        rec = tp / len(exp) if exp else 1.0
        print(f"{name:<24}{m:>9}{dt:>9.1f}{m / dt:>10,.0f}{peak:>9,}{prec:>10.4f}{rec:>8.4f}", flush=True)
    if args.e2e:
        import tempfile

        from workbench.dedup import run_files

        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run = run_files([str(args.corpus)], output=f"{tmp}/kept.jsonl", removed=f"{tmp}/removed.jsonl")
            dt = time.perf_counter() - t
        print(f"end to end (parse, dedup, write; run_files): {dt:.1f}s for {run.rows_read} rows ({run.rows_read / dt:,.0f} rows/s)")
    if args.engine == "ray":
        race_ray(args.corpus)
    print("exact hash finds exact copies only (its recall is the exact share); workbench engine = no Conversation objects.")


def _e2e_local(corpus: str, out: str) -> tuple[float, int, int, list[str]]:
    """`workbench dedup --canonical` in a fresh process (canonical rows, as Ray writes them, so the kept ids
    compare): seconds, its peak resident MB (ru_maxrss), rows, kept ids."""
    import json
    import resource
    import subprocess

    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "workbench", "dedup", corpus, "-o", f"{out}/kept.jsonl", "--removed",
                          f"{out}/removed.jsonl", "--json", "--canonical"], check=True, capture_output=True, text=True)  # fmt: skip
    dt = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    rows = json.loads(res.stdout)["counts"]["rows_read"]
    return dt, peak_mb, rows, [json.loads(line)["id"] for line in Path(f"{out}/kept.jsonl").read_text().splitlines()]


def race_ray(corpus: Path) -> None:
    """End to end, files in and out: `workbench dedup` (its whole process's peak memory, for rows per GB) and
    `--engine ray` on a local Ray of 1 and 2 workers (Ray's start excluded: a cluster is already up)."""
    import json
    import tempfile

    import ray

    from workbench.dedup import run_ray
    from workbench.dedup.ray_engine import start

    with tempfile.TemporaryDirectory() as tmp:
        dt, peak_mb, rows, kept_ids = _e2e_local(str(corpus), tmp)
        print(f"{'engine (end to end)':<24}{'rows':>9}{'seconds':>9}{'docs/s':>10}{'peak MB':>9}  same kept set", flush=True)
        print(f"{'local (numba)':<24}{rows:>9}{dt:>9.1f}{rows / dt:>10,.0f}{peak_mb:>9,}  -   "
              f"(whole process: {rows / (peak_mb / 1024):,.0f} rows per GB)", flush=True)  # fmt: skip
        for workers in (1, 2):
            start(workers)  # started before the clock: a cluster is up before a job is sent to it
            t = time.perf_counter()
            run = run_ray([str(corpus)], output=f"{tmp}/ray{workers}", removed=f"{tmp}/ray{workers}.removed")
            dt = time.perf_counter() - t
            ray.shutdown()
            shards = sorted(Path(f"{tmp}/ray{workers}").glob("part-*.jsonl"))
            ids = [json.loads(line)["id"] for f in shards for line in f.read_text().splitlines()]
            print(f"{f'ray, {workers} worker(s)':<24}{run.rows_read:>9}{dt:>9.1f}{run.rows_read / dt:>10,.0f}{'-':>9}  {ids == kept_ids}", flush=True)


if __name__ == "__main__":
    main()
