"""Race `workbench ingest` against datasets.load_dataset("json") + .map to the same messages form.

    .venv/bin/python bench/ingest.py --rows 1000000

Each run happens in a fresh subprocess, so its peak RSS (getrusage) is its own. Both sides read the
same JSONL, convert every row to canonical messages with a blake2b id and write JSONL; workbench
also validates every turn and lints the content. Imports are outside the timed part on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

ROLE = {"system": "system", "human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}


def child_workbench(src: Path, out: Path) -> dict[str, float]:
    from workbench.data.ingest import ingest_to

    t = time.perf_counter()
    report = ingest_to([src], out)
    seconds = time.perf_counter() - t
    assert report.read == report.written + report.rejected
    return {"seconds": seconds, "rows": report.read, "written": report.written}


def child_datasets(src: Path, out: Path) -> dict[str, float]:
    import hashlib

    import datasets

    datasets.disable_progress_bars()
    cache = out.parent / f"hf-cache-{os.getpid()}"

    def to_messages(row: dict) -> dict:
        turns = row.get("messages") or row.get("conversations")
        msgs = [{"role": ROLE[t.get("role") or t.get("from")], "content": t.get("content") or t.get("value")} for t in turns]
        h = hashlib.blake2b(digest_size=8)
        for m in msgs:
            h.update(m["role"].encode() + b"\x1f" + m["content"].encode() + b"\x1e")
        return {"messages": msgs, "id": h.hexdigest()}

    try:
        t = time.perf_counter()
        ds = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(cache))
        ds = ds.map(to_messages, remove_columns=ds.column_names)
        ds.to_json(str(out), force_ascii=False)
        seconds = time.perf_counter() - t
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": seconds, "rows": len(ds), "written": len(ds)}


def run_child(tool: str, src: Path) -> dict[str, float]:
    out = src.with_name(f"{src.stem}.{tool}.out.jsonl")
    cmd = [sys.executable, __file__, "--child", tool, "--src", str(src), "--dst", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{res.stderr[-3000:]}")
    for p in out.parent.glob(f"{out.name}*"):
        p.unlink()
    for p in out.parent.glob(f"{src.stem}.{tool}.out.rejects.jsonl"):
        p.unlink()
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=("workbench", "datasets"), help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = (child_workbench if args.child == "workbench" else child_datasets)(args.src, args.dst)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps(result))
        return

    from gen_rows import generate

    t = time.perf_counter()
    files = generate(args.rows, args.seed)
    print(f"generated/reused {args.rows} rows x 2 files in {time.perf_counter() - t:.1f}s; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    header = f"{'file':<26} {'tool':<22} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'RSS/file':>9}"
    lines = [header, "-" * len(header)]
    for src in files:
        size_mb = src.stat().st_size / 2**20
        for tool, label in (("workbench", "workbench ingest"), ("datasets", "datasets json + map")):
            r = run_child(tool, src)
            lines.append(f"{src.name:<26} {label:<22} {int(r['rows']):>9} {r['seconds']:>8.1f} "
                         f"{r['rows'] / r['seconds']:>9,.0f} {r['peak_rss_mb']:>12,.0f} {r['peak_rss_mb'] / size_mb:>8.2f}x")  # fmt: skip
            print(lines[-1] if len(lines) > 3 else "\n".join(lines), flush=True)
    print("file sizes: " + ", ".join(f"{p.name} {p.stat().st_size / 2**20:,.0f} MB" for p in files))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
