"""Time to first screen and peak memory of `workbench tui` on a big JSONL, beside datasets.load_dataset("json").

    .venv/bin/python bench/tui_open.py --rows 100000 1000000

Each measurement runs in a fresh subprocess, so its peak RSS (getrusage) is its own. The app runs
headless (Textual's run_test, 160x48) from App() to the first frame that shows rows; "indexed" is
when every row's byte range is known (the scrollbar covers the whole file). load_dataset is timed
from the call to a ready Dataset, with a fresh cache dir (what opening a new file costs). Imports
are outside the timed part on both sides and reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_tui(src: Path) -> dict[str, float]:
    t = time.perf_counter()
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.session import options

    imports = time.perf_counter() - t
    out: dict[str, float] = {"imports": imports}

    async def go() -> None:
        started = time.perf_counter()
        app = WorkbenchApp(options([str(src)]))
        async with app.run_test(size=(160, 48)) as pilot:
            while app.first_rows_at is None:
                await pilot.pause(0.01)
            await pilot.pause()  # the frame with rows is drawn
            out["first_screen"] = time.perf_counter() - started
            out["rss_first_screen"] = rss_mb()
            out["rows_on_first_screen"] = app.session.n
            job = app.session.jobs.get("index")
            while job is None or not job.finished:
                await pilot.pause(0.02)
                job = app.session.jobs.get("index")
            out["indexed"] = time.perf_counter() - started
            out["rows"] = app.session.n
            await pilot.press("end")  # jump to the last row: parsed on demand
            await pilot.pause()
            out["jump_to_last"] = time.perf_counter() - started - out["indexed"]
            out["rss_indexed"] = rss_mb()
            app.workers.cancel_all()

    asyncio.run(go())
    return out


def child_datasets(src: Path) -> dict[str, float]:
    t = time.perf_counter()
    import datasets

    imports = time.perf_counter() - t
    datasets.disable_progress_bars()
    cache = src.parent / f"hf-cache-{os.getpid()}"
    try:
        t = time.perf_counter()
        ds = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(cache))
        seconds = time.perf_counter() - t
        _ = ds[len(ds) - 1]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"imports": imports, "first_screen": seconds, "indexed": seconds, "rows": len(ds), "rss_indexed": rss_mb()}


def run_child(tool: str, src: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", tool, "--src", str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def generate(rows: int, out: Path) -> Path:
    """Messages JSONL from bench/gen_rows.py's chats (the ingest bench's file when it is already there)."""
    from gen_rows import chat

    existing = out / f"messages-{rows}-0.jsonl"
    if existing.exists():
        return existing
    path = out / f"tui-messages-{rows}.jsonl"
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"messages": chat(rng)}) + "\n" for _ in range(rows))
    tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--child", choices=("tui", "datasets"), help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = (child_tui if args.child == "tui" else child_datasets)(args.src)
        result.setdefault("rss_first_screen", result.get("rss_indexed", 0.0))
        print(json.dumps(result))
        return

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    header = (f"{'file':<28} {'MB':>6} {'tool':<24} {'rows':>9} {'imports s':>9} {'first screen s':>14} "
              f"{'all rows s':>10} {'RSS first MB':>12} {'RSS peak MB':>11}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for rows in args.rows:
        src = generate(rows, args.out)
        size = src.stat().st_size / 2**20
        for tool, label in (("tui", "workbench tui"), ("datasets", 'load_dataset("json")')):
            r = run_child(tool, src)
            print(f"{src.name:<28} {size:>6,.0f} {label:<24} {int(r['rows']):>9,} {r['imports']:>9.2f} "
                  f"{r['first_screen']:>14.2f} {r['indexed']:>10.2f} {r['rss_first_screen']:>12,.0f} "
                  f"{r['rss_indexed']:>11,.0f}", flush=True)  # fmt: skip
    print("workbench tui: 'first screen' = App() to the first frame with rows; 'all rows' = every row indexed.")
    print('load_dataset("json"): both columns = the call returning a Dataset (nothing shows before it).')
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
