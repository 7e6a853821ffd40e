"""Bench: the demo's eval stage against its training stage, and workbench's eval settings against lm-eval's defaults.

    .venv/bin/python bench/eval_speed.py [--run runs/demo-cpu] [--limit 64]

1. From a finished `workbench run recipes/demo-cpu.yaml` (its stages.json): the eval stage's seconds
   against the train stage's, and their ratio (target: eval at most 1.5x training).
2. The same lm-eval task (demo-quantity, the demo's base model, --limit items) run twice in this
   process: with lm-eval's defaults (batch size 1, torch's default thread count) and with workbench's
   (batch 32 on CPU, one pinned thread, as training uses). Same prompts and greedy generation, so the
   scores must agree; the times are printed side by side with the machine's load, since a shared
   machine makes every figure noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def stage_times(run: Path) -> None:
    stages = json.loads((run / "stages.json").read_text())
    train, ev = stages.get("train", {}).get("seconds"), stages.get("eval", {}).get("seconds")
    if not train or not ev:
        print(f"{run}: no finished train and eval stages in stages.json")
        return
    print(f"demo run {run}: train stage {train:.1f} s, eval stage {ev:.1f} s, eval/train = {ev / train:.2f} (target <= 1.5)")


def race(limit: int) -> None:
    import torch

    from workbench.eval import run as ev
    from workbench.eval.tasks import prepare_tasks

    model = ev.resolve_model("tiny-pretrained:chatml")
    gen = {"max_gen_toks": 32, "temperature": 0.0}
    default_threads = torch.get_num_threads()
    rows = []
    for label, batch, threads in (("lm-eval defaults", 1, default_threads), ("workbench", None, None)):
        s = ev.Settings(tasks=["demo-quantity"], limit=limit, gen_kwargs=gen, batch_size=batch, threads=threads, generations=0)
        t0 = time.perf_counter()
        with prepare_tasks(s.tasks) as td:
            res = ev._run_one(model, None, s, td, [], lambda m: None)
        seconds = time.perf_counter() - t0
        score = res.tasks["demo-quantity"].metrics["exact_match,flexible-extract"].value
        rows.append((label, res.settings["batch_size"], res.settings["threads"], seconds, score))
    print(f"\nlm-eval demo-quantity on the demo base, {limit} items, load average {os.getloadavg()[0]:.1f}")
    print(f"{'settings':<18} {'batch':>5} {'threads':>7} {'seconds':>8} {'flexible EM':>12}")
    for label, batch, threads, seconds, score in rows:
        print(f"{label:<18} {batch!s:>5} {threads!s:>7} {seconds:>8.1f} {score:>12.3f}")
    print(f"speedup {rows[0][3] / rows[1][3]:.1f}x; same score: {rows[0][4] == rows[1][4]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "demo-cpu")
    ap.add_argument("--limit", type=int, default=64)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    if (args.run / "stages.json").is_file():
        stage_times(args.run)
    else:
        print(f"{args.run}: not a finished run (run `workbench run recipes/demo-cpu.yaml` first)")
    race(args.limit)


if __name__ == "__main__":
    main()
