"""Time to first screen and peak memory of `workbench tui` on a big JSONL, beside datasets.load_dataset("json");
then, with --curate FILE, curation at that size: keystrokes while passes run, full text search, keep/drop decisions.

    .venv/bin/python bench/tui_open.py --rows 100000 1000000
    .venv/bin/python bench/gen_dedup.py --rows 1000000 --out /tmp/dedup1m.jsonl
    .venv/bin/python bench/tui_open.py --rows --curate /tmp/dedup1m.jsonl

Targets printed beside the figures: no keystroke waits more than 100 ms; a full text search over
1M rows takes at most 3 s; a keep/drop decision at most 100 ms. The search races the scan it
replaced (one Python bytes regex over the mapped file, as before) in the same process.

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


KEY_TARGET, SEARCH_TARGET, DECISION_TARGET = 0.100, 3.0, 0.100


def _regex_scan(ix: object, text: str) -> int:
    """The search this app had before: one Python bytes regex over the mapped file, hit by hit (holds the GIL)."""
    import numpy as np

    from workbench.data.rowindex import _pattern

    pattern = _pattern(text, True)
    starts, ends = ix.starts, ix.ends  # type: ignore[attr-defined]
    pos, limit, hits = int(starts[0]), int(ends[-1]), 0
    while pos < limit:
        m = pattern.search(ix._mm, pos, limit)  # type: ignore[attr-defined]
        if m is None:
            break
        row = int(np.searchsorted(starts, m.start(), side="right")) - 1
        if row >= 0 and m.end() <= ends[row]:
            hits += 1
            pos = int(ends[row]) + 1
        else:
            pos = m.start() + 1
    return hits


CHARS = {"slash": "/", "escape": "\x1b", "ctrl+u": "\x15"}


async def latency(app: object, key: str, done: object, timeout: float = 30.0) -> float:
    """Seconds from a key reaching the app to the first frame drawn after it was handled (``done()`` true).

    Pilot's own ``press`` waits until the whole process is idle, which never happens while a
    background pass runs, so it cannot time a key; this watches the app's frames instead.
    """
    from textual import events

    frames: list[float] = app._bench_frames  # type: ignore[attr-defined]
    event = events.Key(key, CHARS.get(key, key if len(key) == 1 else None))
    event.set_sender(app)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    app._driver.send_message(event)  # type: ignore[attr-defined]
    while not done():  # type: ignore[operator]
        await asyncio.sleep(0.001)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(key)
    handled = time.perf_counter()
    while not frames or frames[-1] < handled:
        await asyncio.sleep(0.001)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{key}: no frame")
    return next(f for f in frames if f >= handled) - t0


def child_curate(src: Path) -> dict[str, float]:
    """Keys while the background passes run, then (passes done) searches and keep/drop decisions, headless."""
    from textual.widgets import Input

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.session import options

    out: dict[str, float] = {}

    async def go() -> None:
        started = time.perf_counter()
        app = WorkbenchApp(options([str(src)]))
        frames: list[float] = []
        app._bench_frames = frames  # type: ignore[attr-defined]
        display = app._display

        def timed_display(*args: object, **kwargs: object) -> object:
            out_ = display(*args, **kwargs)  # type: ignore[arg-type]
            frames.append(time.perf_counter())
            return out_

        app._display = timed_display  # type: ignore[method-assign]
        async with app.run_test(size=(160, 48)) as pilot:
            while app.first_rows_at is None:
                await pilot.pause(0.01)
            out["first_screen"] = time.perf_counter() - started
            screen = app.screen
            table, box = screen.table, screen.query_one("#filter", Input)

            async def keys(seq: list[str]) -> list[float]:
                got = []
                for key in seq:
                    if len(key) == 1:
                        want = box.value + key
                        got.append(await latency(app, key, lambda want=want: box.value == want))
                    elif key == "slash":
                        got.append(await latency(app, key, lambda: box.has_focus))
                    elif key == "ctrl+u":
                        got.append(await latency(app, key, lambda: box.value == ""))
                    elif key == "escape":
                        got.append(await latency(app, key, lambda: table.has_focus))
                    else:
                        before = table.cursor
                        got.append(await latency(app, key, lambda before=before: table.cursor != before))
                    await asyncio.sleep(0.05)  # a person types about 10 keys a second at most
                return got

            busy = await keys(["slash", *"specifically", "ctrl+u", "escape"])
            while len(table.view) < app.session.n:  # the cleared filter is back to every row
                await asyncio.sleep(0.05)
            busy += await keys(["pagedown"] * 10 + ["down"] * 10)
            out["scan_done_during_keys"] = float(app.session.scanned)
            out["key_max_busy"], out["key_p50_busy"] = max(busy), sorted(busy)[len(busy) // 2]
            s = app.session
            while not (s.scanned and "dedup" in s.jobs and s.jobs["dedup"].finished):
                await pilot.pause(0.5)
            out["passes_done"] = time.perf_counter() - started
            out["rows"] = s.n
            out["rss_passes"] = rss_mb()
            mid = s.item(s.n // 2)
            words = mid.messages[-1].content.split()[2:4] if hasattr(mid, "messages") else ["x"]
            for name, word in (("rare", " ".join(words)), ("common", "a"), ("none", "zqxjzqxj")):
                s.search_cache = None
                t = time.perf_counter()
                screen.set_filter(word)
                while screen._search is not None:  # the spinner is gone: every row searched
                    await pilot.pause(0.005)
                out[f"search_{name}"] = time.perf_counter() - t
                out[f"search_{name}_hits"] = len(screen.table.view)
                t = time.perf_counter()
                hits = _regex_scan(s.rows, word)
                out[f"regex_{name}"] = time.perf_counter() - t
                assert hits == out[f"search_{name}_hits"], (word, hits, out[f"search_{name}_hits"])
            screen.set_filter("")
            await pilot.pause(0.5)
            table.focus()
            idle = await keys(["pagedown"] * 10 + ["slash", *"fox", "ctrl+u", "escape"])
            out["key_max_idle"], out["key_p50_idle"] = max(idle), sorted(idle)[len(idle) // 2]
            t = time.perf_counter()
            await pilot.press("3")
            out["open_duplicates"] = time.perf_counter() - t
            dup = app.screen
            out["clusters"] = len(dup.clusters.view)  # type: ignore[attr-defined]
            await pilot.press("enter", "down")  # into the biggest cluster's members, on a removed row
            decisions = []
            for key in ["k", "u", "x", "u", "k", "x", "x", "u", "u", "u"]:
                n = s.unexported
                decisions.append(await latency(app, key, lambda n=n: s.unexported != n))
                await asyncio.sleep(0.05)
            out["decision_max"], out["decision_p50"] = max(decisions), sorted(decisions)[len(decisions) // 2]
            app.workers.cancel_all()
            app.exit()

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
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--curate", type=Path, help="a JSONL (bench/gen_dedup.py's) to time keys, searches and decisions on")
    ap.add_argument("--child", choices=("tui", "datasets", "curate"), help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = {"tui": child_tui, "datasets": child_datasets, "curate": child_curate}[args.child](args.src)
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
    if args.curate:
        curate(args.curate)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def curate(src: Path) -> None:
    print(f"\ncuration on {src.name} ({src.stat().st_size / 2**20:,.0f} MB), load average {os.getloadavg()[0]:.2f}", flush=True)
    r = run_child("curate", src)

    def row(what: str, value: float, target: float | None = None, note: str = "") -> None:
        verdict = "" if target is None else ("  ok" if value <= target else "  OVER TARGET")
        limit = "" if target is None else f"(target <= {target * 1000:.0f} ms)" if target < 1 else f"(target <= {target:.0f} s)"
        shown = f"{value * 1000:8.1f} ms" if value < 1 else f"{value:8.2f} s "
        print(f"  {what:<52} {shown} {limit:<20}{verdict} {note}")

    print(f"  rows {int(r['rows']):,}; first screen {r['first_screen']:.2f} s; read + duplicates done after "
          f"{r['passes_done']:.1f} s; RSS then {r['rss_passes']:,.0f} MB; {int(r['clusters']):,} clusters")  # fmt: skip
    row("slowest keystroke (key to frame) while read+dedup run", r["key_max_busy"], KEY_TARGET, f"(median {r['key_p50_busy'] * 1000:.0f} ms)")
    row("slowest keystroke (key to frame), passes done", r["key_max_idle"], KEY_TARGET, f"(median {r['key_p50_idle'] * 1000:.0f} ms)")
    for name in ("rare", "common", "none"):
        row(f"full text search, {name} word ({int(r[f'search_{name}_hits']):,} rows)", r[f"search_{name}"], SEARCH_TARGET,
            f"| Python regex scan (before): {r[f'regex_{name}']:.2f} s, {r[f'regex_{name}'] / r[f'search_{name}']:.1f}x")  # fmt: skip
    row("open the Duplicates screen (no recomputing)", r["open_duplicates"])
    row("keep/drop/undo decision (key to frame), slowest of 10", r["decision_max"], DECISION_TARGET, f"(median {r['decision_p50'] * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
