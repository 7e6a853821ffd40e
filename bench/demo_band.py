"""Bench: the band the demo's figures land in, over pretraining seeds and CPU thread counts.

    .venv/bin/python bench/demo_band.py [--cells 0:1,0:2,1:1,2:2] [--data-from runs/demo-cpu] [--out bench/out/demo_band]

The demo's numbers depend on the small base model pretrained on this machine, and another machine's
CPU kernels and thread count give a different base (floating-point sums in another order grow into
other weights over thousands of steps). Each cell SEED:THREADS stands for such a machine: the base is
pretrained with that seed and that many torch threads, then `workbench run recipes/demo-cpu.yaml`
trains and evaluates on it with the same thread count, exactly as the README's main command does.
The table gives, per cell, strict and flexible exact match before and after, held-out loss before
and after, and the train and eval stage times; the last lines give the band (min and max over cells)
that README states. --data-from copies a finished run's ingest/dedup/check outputs so only the
model-dependent stages rerun (they do not depend on the base).

--direct runs the same train and eval stage functions in-process on the finished run's checked
rows (no `workbench run`, so no polars or datasketch: what a machine with only the ML stack
needs), and --parallel N runs that many cells at once, each pinned to its own threads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pretrained(root: Path, seed: int, threads: int) -> Path:
    """The demo base pretrained with this seed and thread count (cached under root); WORKBENCH_BAND_PRETRAIN_STEPS
    (--pretrain-steps) trains it for other than the default steps."""
    from workbench.train import pretrain

    steps = int(os.environ.get("WORKBENCH_BAND_PRETRAIN_STEPS") or pretrain.STEPS)
    dest = root / (f"base-seed{seed}-threads{threads}" + ("" if steps == pretrain.STEPS else f"-steps{steps}"))
    t0 = time.perf_counter()
    pretrain.pretrain_base(dest, seed=seed, threads=threads, steps=steps)
    print(f"  base seed {seed}, {threads} thread(s): {time.perf_counter() - t0:.0f} s", flush=True)
    return dest


def seed_run_dir(run: Path, data_from: Path | None) -> None:
    """Copy a finished run's data-stage outputs (they do not depend on the base model), so only check → eval rerun."""
    if data_from is None or not (data_from / "stages.json").is_file() or run.exists():
        return
    run.mkdir(parents=True)
    for name in ("data", "heldout.jsonl", "ingest.json", "dedup.json"):
        src = data_from / name
        if src.is_dir():
            shutil.copytree(src, run / name)
        elif src.is_file():
            shutil.copy2(src, run / name)
    stages = json.loads((data_from / "stages.json").read_text())
    (run / "stages.json").write_text(json.dumps({k: v for k, v in stages.items() if k in ("ingest", "dedup")}))


def cell(seed: int, threads: int, root: Path, data_from: Path | None, overrides: list[str]) -> dict[str, Any]:
    base = pretrained(root, seed, threads)
    run = root / f"run-seed{seed}-threads{threads}"
    seed_run_dir(run, data_from)
    cmd = [sys.executable, "-m", "workbench", "run", "recipes/demo-cpu.yaml", f"model.name={base}", f"train.threads={threads}",
           f"run_dir={run}", f"report.path={run / 'report.md'}", *overrides]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"cell {seed}:{threads} failed:\n{r.stderr[-3000:]}")
    return read_cell(seed, threads, run)


def cell_direct(seed: int, threads: int, root: Path, data_from: Path, overrides: list[str]) -> dict[str, Any]:
    """The train and eval stages as `workbench run` calls them, on data_from's checked rows, in this process."""
    from workbench import recipe as rc
    from workbench.data import ingest
    from workbench.eval import evaluate_run
    from workbench.train import train

    base = pretrained(root, seed, threads)
    run = root / f"run-seed{seed}-threads{threads}{os.environ.get('WORKBENCH_BAND_PRETRAIN_STEPS') and '-steps' + os.environ['WORKBENCH_BAND_PRETRAIN_STEPS'] or ''}"
    recipe = rc.load(REPO / "recipes" / "demo-cpu.yaml", [f"model.name={base}", f"train.threads={threads}", f"run_dir={run}", *overrides])
    recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"heldout": str(data_from / "heldout.jsonl")})})
    convs = ingest.load([data_from / "data" / "checked.jsonl"]).conversations
    t0 = time.perf_counter()
    train(recipe, run_dir=run, prepared=convs)
    t1 = time.perf_counter()
    (run / "heldout.jsonl").write_bytes((data_from / "heldout.jsonl").read_bytes())
    evaluate_run(run, recipe=recipe)
    t2 = time.perf_counter()
    (run / "stages.json").write_text(json.dumps({"train": {"seconds": round(t1 - t0, 1)}, "eval": {"seconds": round(t2 - t1, 1)}}))
    return read_cell(seed, threads, run)


def read_cell(seed: int, threads: int, run: Path) -> dict[str, Any]:
    doc = json.loads((run / "eval.json").read_text())
    stages = json.loads((run / "stages.json").read_text())
    m = lambda who, f: doc[who]["tasks"]["demo-quantity"]["metrics"][f"exact_match,{f}"]["value"]  # noqa: E731
    return {"seed": seed, "threads": threads, "strict_before": m("base", "strict-match"), "strict_after": m("adapter", "strict-match"),
            "flex_before": m("base", "flexible-extract"), "flex_after": m("adapter", "flexible-extract"),
            "loss_before": doc["base"]["heldout"]["loss"], "loss_after": doc["adapter"]["heldout"]["loss"],
            "train_s": stages["train"]["seconds"], "eval_s": stages["eval"]["seconds"]}  # fmt: skip


COLUMNS = ("strict_before", "strict_after", "flex_before", "flex_after", "loss_before", "loss_after", "train_s", "eval_s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="0:1,0:2,1:1,2:2", help="SEED:THREADS pairs, comma-separated")
    ap.add_argument("--data-from", type=Path, default=REPO / "runs" / "demo-cpu", help="a finished demo run to copy the data stages from")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "demo_band")
    ap.add_argument("--direct", action="store_true", help="train and eval in-process on --data-from's checked rows")
    ap.add_argument("--parallel", type=int, default=1, help="cells run at once (--direct)")
    ap.add_argument("--pretrain-steps", type=int, default=None, help="pretrain each base for this many steps (default: the demo's)")
    ap.add_argument("overrides", nargs="*", help="extra KEY=VALUE recipe overrides (e.g. train.max_steps=600)")
    args = ap.parse_args()
    if args.pretrain_steps:
        os.environ["WORKBENCH_BAND_PRETRAIN_STEPS"] = str(args.pretrain_steps)  # read by the cells, in this process or a pool's
    args.out.mkdir(parents=True, exist_ok=True)
    specs = [tuple(int(x) for x in spec.split(":")) for spec in args.cells.split(",")]
    rows = []
    if args.direct and args.parallel > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.parallel) as pool:
            futures = {pool.submit(cell_direct, sd, th, args.out, args.data_from, args.overrides): (sd, th) for sd, th in specs}
            for fut in as_completed(futures):
                try:
                    rows.append(fut.result())
                except Exception as e:  # one failed cell must not lose the others
                    print(f"cell {futures[fut]} failed: {type(e).__name__}: {e}", flush=True)
                    continue
                print("  " + json.dumps(rows[-1]), flush=True)
                (args.out / "band.json").write_text(json.dumps(rows, indent=1) + "\n")
        rows.sort(key=lambda r: (r["seed"], r["threads"]))
    for seed, threads in ([] if args.direct and args.parallel > 1 else specs):
        print(f"cell seed {seed}, threads {threads}", flush=True)
        if args.direct:
            rows.append(cell_direct(seed, threads, args.out, args.data_from, args.overrides))
        else:
            rows.append(cell(seed, threads, args.out, args.data_from if args.data_from.is_dir() else None, args.overrides))
        print("  " + json.dumps(rows[-1]), flush=True)
        (args.out / "band.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nload average {os.getloadavg()[0]:.1f} (figures of time are noisy on a shared machine)")
    print("seed threads " + " ".join(f"{c:>13}" for c in COLUMNS))
    for r in rows:
        print(f"{r['seed']:>4} {r['threads']:>7} " + " ".join(f"{r[c]:>13.3f}" for c in COLUMNS))
    print("band " + " " * 7 + " ".join(f"{min(r[c] for r in rows):>6.3f}-{max(r[c] for r in rows):<6.3f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
