"""Race `workbench dedup FILE` against rensa as whole processes (start-up, parsing and writing included).

    .venv/bin/python bench/gen_dedup.py --rows 100000 --out /tmp/dedup100k.jsonl
    .venv/bin/python bench/dedup_cli.py /tmp/dedup100k.jsonl [/tmp/dedup1m.jsonl ...] [--repeat 3]
    .venv/bin/python bench/dedup_cli.py --startup          # `workbench dedup --help` and a 100-row file

Each round runs, one after the other on the same corpus, ``python -m workbench dedup FILE`` and
``bench/rensa_dedup.py`` (rensa's README batch deduplicator, with the shingling and JSON handling a
user writes around it). It prints per round: wall seconds, rows/s, peak memory of the whole process
tree (PSS summed over the process and its workers, sampled every 50 ms), precision and pair recall
on the corpus' planted duplicates (``<corpus>.truth.npz``: a planted pair is found when one of its
two rows is removed), the ratio workbench / rensa, and the load average when the round started.
Run ``python -m workbench.dedup.compiled`` once first so no round pays the one-time compile.
Both tools run with compiled bytecode, as after ``pip install``: where the environment forbids
writing it (``PYTHONDONTWRITEBYTECODE``), the bench keeps it under a private ``PYTHONPYCACHEPREFIX``
and runs each command once before timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
THRESHOLD = 0.8
PYCACHE = Path(tempfile.gettempdir()) / f"workbench-bench-pycache-{os.getuid()}"


def _tree_rss_mb(pid: int) -> float:
    """Proportional set size summed over a process and its descendants: pages a forked worker
    shares with its parent count once, not once per process (as summed RSS would)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(x.split()[1]) for x in fh if x.startswith("Pss:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds and peak tree RSS (MB) of ``cmd``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as after pip install, which compiles bytecode
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    dt = time.perf_counter() - t
    th.join()
    return dt, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def planted_pairs(corpus: Path) -> list[tuple[int, int]]:
    truth = np.load(f"{corpus}.truth.npz")
    group, kind, jac = truth["group"], truth["kind"], truth["jaccard"]
    members: dict[int, list[int]] = {}
    for i in np.nonzero(group >= 0)[0].tolist():
        k = int(kind[i])
        if k in (0, 1) or (k == 2 and jac[i] >= THRESHOLD):  # base, exact, near at or above the threshold
            members.setdefault(int(group[i]), []).append(i)
    return [(v[0], w) for v in members.values() for w in v[1:]]


def expected(corpus: Path) -> set[int]:
    """Rows a keep-first dedup must remove (0-based): every planted member after its group's first."""
    return {b for _, b in planted_pairs(corpus)}


def score(corpus: Path, removed: set[int], templated: bool) -> tuple[float, float]:
    """Precision (removed rows that are planted duplicates; on a templated corpus, where rows of one
    template are genuinely similar, it is not defined and shows as nan) and pair recall."""
    pairs = planted_pairs(corpus)
    found = sum(1 for a, b in pairs if a in removed or b in removed)
    recall = found / len(pairs) if pairs else 1.0
    if templated:
        return float("nan"), recall
    exp = expected(corpus)
    return (len(exp & removed) / len(removed) if removed else 1.0), recall


def run_workbench(corpus: Path, tmp: str) -> tuple[float, float, set[int], str]:
    kept, rem = f"{tmp}/wb.kept.jsonl", f"{tmp}/wb.removed.jsonl"
    cmd = [sys.executable, "-m", "workbench", "dedup", str(corpus), "-o", kept, "--removed", rem, "--json"]
    dt, peak, p = timed(cmd)
    if p.returncode:
        raise SystemExit(f"workbench failed: {p.stderr[-2000:]}")
    import json

    removed = {json.loads(line)["removed"]["row"] for line in open(rem, encoding="utf-8")}
    return dt, peak, removed, json.loads(p.stdout)["stats"]["kernels"]


def run_rensa(corpus: Path, tmp: str) -> tuple[float, float, set[int]]:
    cmd = [sys.executable, str(REPO / "bench" / "rensa_dedup.py"), str(corpus), f"{tmp}/r.kept.jsonl", f"{tmp}/r.removed.txt"]
    dt, peak, p = timed(cmd)
    if p.returncode:
        raise SystemExit(f"rensa failed: {p.stderr[-2000:]}")
    return dt, peak, {int(x) - 1 for x in open(f"{tmp}/r.removed.txt")}


def race(corpus: Path, repeat: int) -> None:
    n = sum(1 for _ in open(corpus, "rb"))
    templated = "templated" in corpus.name
    print(f"\n{corpus} ({n:,} rows{', templated' if templated else ''}), {os.cpu_count()} CPUs")
    print(f"{'round':>5} {'load':>5}  {'tool':<18}{'seconds':>8}{'rows/s':>10}{'peak MB':>9}{'precision':>10}{'recall':>8}")
    ratios, wb_rates, rs_rates = [], [], []
    for cmd in ([sys.executable, "-m", "workbench", "dedup", "--help"], [sys.executable, str(REPO / "bench" / "rensa_dedup.py"), "-h"]):
        timed(cmd)  # bytecode of both tools written before the first timed round
    for r in range(1, repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            dt, peak, removed, how = run_workbench(corpus, tmp)
            p, rec = score(corpus, removed, templated)
            print(f"{r:>5} {load:>5.2f}  {'workbench dedup':<18}{dt:>8.2f}{n / dt:>10,.0f}{peak:>9,.0f}{p:>10.4f}{rec:>8.4f}", flush=True)
            load2 = os.getloadavg()[0]
            dt2, peak2, removed2 = run_rensa(corpus, tmp)
            p2, rec2 = score(corpus, removed2, templated)
            print(f"{r:>5} {load2:>5.2f}  {'rensa (LSH only)':<18}{dt2:>8.2f}{n / dt2:>10,.0f}{peak2:>9,.0f}{p2:>10.4f}{rec2:>8.4f}", flush=True)
            ratios.append(dt2 / dt)
            wb_rates.append(n / dt)
            rs_rates.append(n / dt2)
    print(f"workbench {min(wb_rates):,.0f}-{max(wb_rates):,.0f} rows/s, rensa {min(rs_rates):,.0f}-{max(rs_rates):,.0f} rows/s; "
          f"workbench / rensa: {min(ratios):.2f}x-{max(ratios):.2f}x (median {statistics.median(ratios):.2f}x); kernels: {how}")  # fmt: skip


def startup(repeat: int) -> None:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.jsonl"
        with open(small, "w") as fh:
            for i in range(100):
                words = " ".join(f"w{(i * 7 + k) % 50}" for k in range(30))
                fh.write(json.dumps({"messages": [{"role": "user", "content": f"q{i % 90}"}, {"role": "assistant", "content": words}]}) + "\n")
        for label, cmd in (
            ("workbench dedup --help", [sys.executable, "-m", "workbench", "dedup", "--help"]),
            ("workbench dedup (100 rows)", [sys.executable, "-m", "workbench", "dedup", str(small), "-o", f"{tmp}/k.jsonl", "--removed", f"{tmp}/r.jsonl"]),
        ):
            timed(cmd)  # bytecode written, kernels loaded once
            times = []
            for _ in range(repeat):
                load = os.getloadavg()[0]
                dt, _, p = timed(cmd)
                assert p.returncode == 0, p.stderr
                times.append((dt, load))
            ts = sorted(t for t, _ in times)
            print(f"{label:<28} {statistics.median(ts):.2f}s median, {ts[0]:.2f}-{ts[-1]:.2f}s over {repeat} runs "
                  f"(load {min(l for _, l in times):.2f}-{max(l for _, l in times):.2f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path, nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--startup", action="store_true", help="time start-up: --help and a 100-row file")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (other work on the machine slows every figure)")
    if args.startup:
        startup(max(args.repeat, 5))
    for c in args.corpus:
        race(c, args.repeat)


if __name__ == "__main__":
    main()
