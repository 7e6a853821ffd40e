"""Bench: the fixed cost of `workbench check` on a small file, next to what it costs without workbench's shortcuts.

    .venv/bin/python bench/check_startup.py [--runs 3] [--model ../shared/fixtures/tokenizers/qwen3]

Each figure is a fresh `python -m workbench check` process on GSM8K rows (8, and 1,000 to show the per-row part),
timed wall-clock and in CPU seconds (user + sys of the child, which a loaded machine inflates less):

- "workbench (cold)": an empty class cache, so the tokenizer is loaded through AutoTokenizer, whose config
  machinery imports torch: what every run cost before the cache (and what the first run on a folder costs);
- "workbench": the class AutoTokenizer picked is remembered and loaded directly, no torch import;
- "AutoTokenizer alone": python importing transformers and loading the same tokenizer with AutoTokenizer,
  nothing else: the floor a start-up through AutoTokenizer cannot go below.

Byte-compiled files matter: with PYTHONDONTWRITEBYTECODE set (as on the shared dev machines) every process
compiles transformers from source, seconds of its own; this bench sets a private PYTHONPYCACHEPREFIX so the
figures are those of a normal install. The machine load (1-minute average) is printed with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("WORKBENCH_FIXTURES", REPO.parent / "shared" / "fixtures"))


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default=str(FIXTURES / "tokenizers" / "qwen3"))
    args = ap.parse_args()
    rows = (FIXTURES / "data" / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        small, big = Path(tmp) / "8.jsonl", Path(tmp) / "1000.jsonl"
        small.write_text("\n".join(rows[:8]) + "\n", encoding="utf-8")
        big.write_text("\n".join(rows[:1000]) + "\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"), PYTHONPATH=str(REPO), WORKBENCH_CACHE=str(Path(tmp) / "cache"))
        check = [sys.executable, "-m", "workbench", "check"]
        floor = [sys.executable, "-c", f"import transformers; transformers.AutoTokenizer.from_pretrained({args.model!r})"]
        run(floor, env)  # byte-compile transformers (and torch) once, outside the timings
        run([*check, str(small), "--model", args.model], env)  # and workbench; this also fills the class cache
        cases = {
            "workbench (cold), 8 rows": ([*check, str(small), "--model", args.model], True),
            "workbench, 8 rows": ([*check, str(small), "--model", args.model], False),
            "workbench, 1000 rows": ([*check, str(big), "--model", args.model], False),
            "AutoTokenizer alone": (floor, False),
        }
        results = {}
        for name, (cmd, cold) in cases.items():
            walls, cpus, loads = [], [], []
            for _ in range(args.runs):
                if cold:
                    (Path(tmp) / "cache" / "tokenizer-classes.json").unlink(missing_ok=True)
                loads.append(load())
                wall, cpu = run(cmd, env)
                walls.append(wall)
                cpus.append(cpu)
            results[name] = {"wall_s": round(min(walls), 2), "cpu_s": round(min(cpus), 2), "load": round(sum(loads) / len(loads), 1)}
            print(f"{name:28} best wall {min(walls):6.2f} s   best cpu {min(cpus):6.2f} s   (load {results[name]['load']}, {os.cpu_count()} CPUs)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
