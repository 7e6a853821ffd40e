"""One 4-bit end-to-end run of the demo recipe on a GPU, on a ~290M-parameter model built from a config;
prints one JSON line: backend, steps, tokens/s, peak torch.cuda.max_memory_allocated() and `workbench plan`'s
estimate for the same recipe (bench/gpu_check.sh runs it once per backend, each in its own process).

    python bench/gpu_run.py --backend peft --out OUT_DIR [--steps 40] [KEY=VALUE ...]

The data stages need polars; where it is missing (the GPU machine, whose wheels travel with a size limit)
the run trains on the sources as they are (`--no-data-stages`), says so, and goes on to lm-eval if it is
importable. On CPU it refuses: it measures CUDA memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# ~290M parameters: 20 layers of hidden 1024 (16 heads, 4 KV heads) and MLP 4096, the tiny chatml tokenizer
MODEL = "{arch: llama, hidden: 1024, layers: 20, heads: 16, kv_heads: 4, intermediate: 4096}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("peft", "unsloth"), required=True)
    ap.add_argument("--out", type=Path, required=True, help="folder for the run directory")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--smoke", action="store_true", help="CPU smoke test of this script: the small tiny model, 16-bit, no CUDA figures")
    ap.add_argument("overrides", nargs="*", help="further recipe overrides")
    args = ap.parse_args()
    smoke = ["model.tiny={}", "quant.load_in_4bit=false", "train.optimizer=adamw_torch", "train.gradient_checkpointing=false",
             "train.eval_every=null", "train.save_every=null", "eval.limit=4", "eval.gen_kwargs.max_gen_toks=8", "data.limit=32",
             "train.max_steps=4"] if args.smoke else []
    sys.path.insert(0, str(REPO))
    import os

    os.chdir(REPO)  # the demo recipe names data/ and recipes/tasks/ relative to the repository
    from workbench import recipe as rc
    from workbench.train import import_unsloth_first

    run_dir = args.out / f"run-{args.backend}"
    recipe = rc.load(REPO / "recipes" / "demo-cpu.yaml", [
        "model.name=tiny:chatml", f"model.tiny={MODEL}", "quant.load_in_4bit=true", f"train.backend={args.backend}",
        f"train.max_steps={args.steps}", "train.per_device_batch_size=8", "train.optimizer=paged_adamw_8bit",
        "train.gradient_checkpointing=true", "train.eval_every=20", "train.save_every=20", "train.threads=null",
        "eval.limit=50", f"run_dir={run_dir}", f"report.path={run_dir / 'report.md'}", *smoke, *args.overrides,
    ])  # fmt: skip
    if args.backend == "unsloth" and not import_unsloth_first(recipe):
        print(json.dumps({"backend": "unsloth", "skipped": "unsloth cannot be imported here (or no CUDA)"}))
        return 0
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print(json.dumps({"backend": args.backend, "skipped": "no CUDA device"}))
        return 0
    from workbench import pipeline
    from workbench.train import for_recipe, model_path

    messages: list[str] = []

    def on(event: object) -> None:
        if getattr(event, "kind", None) == "message":
            messages.append(str(getattr(event, "message", "")))

    staged = importlib.util.find_spec("polars") is not None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if staged:
        result = pipeline.run(recipe, until="train", hooks=pipeline.Hooks(train=on, message=messages.append)).train
    else:
        messages.append("polars is not installed here: trained on the sources as they are (the data stages are verified on CPU)")
        result = pipeline.train_sources(recipe, on_progress=on)
    train_s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0
    plan = for_recipe(recipe, model_path(recipe.model), backend=args.backend)
    row = plan.rows[0]
    line: dict[str, object] = {
        "backend": result.backend, "steps": result.steps, "data_stages": staged, "loss": [result.first_loss, result.last_loss],
        "tokens_per_s": result.tokens_per_s, "train_s": round(train_s, 1), "trainable": result.trainable_params,
        "plan_trainable": row.trainable, "peak_allocated_gb": round(peak, 2),
        "plan_gb_without_context": round(row.total - row.overhead, 2), "plan_gb": round(row.total, 2),
        "gpu": torch.cuda.get_device_name(0) if cuda else None, "notes": messages[-8:],
    }  # fmt: skip
    if importlib.util.find_spec("lm_eval") is not None:
        from workbench.eval import evaluate_run

        t1 = time.perf_counter()
        try:
            base, adapted, _ = evaluate_run(run_dir)
            line["eval"] = {"seconds": round(time.perf_counter() - t1, 1),
                            "base": {t: {m: v.value for m, v in r.metrics.items()} for t, r in base.tasks.items()},
                            "adapter": {t: {m: v.value for m, v in r.metrics.items()} for t, r in adapted.tasks.items()}}  # fmt: skip
        except Exception as e:  # the eval stage is verified on CPU; here it is a bonus, reported either way
            line["eval"] = f"failed: {type(e).__name__}: {str(e)[:300]}"
    else:
        line["eval"] = "lm_eval is not installed here"
    print(json.dumps(line, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
