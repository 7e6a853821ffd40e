"""Peak memory of `check`, `mask`, `stats --model`, `dedup` and the TUI's passes on a file holding one 50 MB row.

Run: python bench/big_row.py [--mb 50]. Each command runs in a fresh process; its peak RSS (ru_maxrss,
which counts its worker processes too) is printed next to the 1 GiB target. Rows over
workbench.template.MAX_CHARS characters are reported (render_error: too long to render), not tokenised.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MB = 1024

# the TUI's work without a screen: open, index, read every row, tokenise, duplicates
TUI = """
import sys
from workbench.tui.session import Session, options
s = Session(options([sys.argv[1]], model=sys.argv[2], max_length=2048))
s.open(); s.index(); s.scan(); s.load_tokenizer(); s.tokenise(); s.run_dedup()
print(s.n, "rows;", sum(1 for c in s.codes.values() for x in c if "render" in x), "render findings")
"""

MEASURE = """
import resource, subprocess, sys
res = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(res.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, (res.stdout + res.stderr)[-300:].replace("\\n", " | "))
"""


def make_file(path: Path, mb: int) -> None:
    rnd = random.Random(0)
    words = "the of and to in is apple river quantum seven lantern orbit velvet marble".split()
    rows = [{"messages": [{"role": "user", "content": f"question {i} about {rnd.choice(words)}"},
                          {"role": "assistant", "content": f"answer {i}: " + " ".join(rnd.choices(words, k=30))}]} for i in range(20)]  # fmt: skip
    big = " ".join(rnd.choices(words, k=mb * 1024 * 1024 // 6))
    rows.insert(7, {"messages": [{"role": "user", "content": "summarise this"}, {"role": "assistant", "content": big}]})
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="wb-bigrow-") as tmp:
        root = Path(tmp)
        data = root / "big.jsonl"
        make_file(data, args.mb)
        from workbench.train import tiny

        tok = tiny.build(root / "tok", "chatml", model=False)
        py = sys.executable
        commands = {
            "check": [py, "-m", "workbench", "check", str(data), "--model", str(tok), "--max-length", "2048"],
            "mask": [py, "-m", "workbench", "mask", str(data), "--model", str(tok), "--limit", "10"],
            "stats --model": [py, "-m", "workbench", "stats", str(data), "--model", str(tok), "--max-length", "2048"],
            "dedup": [py, "-m", "workbench", "dedup", str(data), "-o", str(root / "k.jsonl"), "--removed", str(root / "r.jsonl")],
            "tui passes": [py, "-c", TUI, str(data), str(tok)],
        }
        print(f"file: {data.stat().st_size / 1e6:.1f} MB, 21 rows, one of {args.mb} MB; load: {os.getloadavg()[0]:.2f}")
        print(f"{'command':<15} {'exit':>4} {'peak RSS MB':>12} {'target MB':>10} {'seconds':>8}")
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            out = subprocess.run([py, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env).stdout.split(" ", 2)
            secs = time.perf_counter() - t0
            print(f"{name:<15} {out[0]:>4} {out[1]:>12} {TARGET_MB:>10} {secs:>8.1f}   {out[2][:140] if len(out) > 2 else ''}")


if __name__ == "__main__":
    main()
