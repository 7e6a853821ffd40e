"""Tokens/s of `workbench train` against a plain TRL SFTTrainer + PEFT run: same model, data, settings, process.

    .venv/bin/python bench/train.py [--steps 60] [--rounds 2]

Both train a LoRA (all linear layers) on the demo data with the same small locally built model,
batch size, learning rate, optimiser, seed and thread count. Plain TRL gets the conversations and
masks them itself (assistant_only_loss, the template's generation tags); workbench gets the same
conversations and trains on its own verified labels. Rounds alternate (workbench, TRL, workbench,
TRL, ...) after one short warm-up run of each; the best and the median round of each are
printed, since a shared machine's load drifts. Prints both figures and
the ratio (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TINY = {"hidden": 256, "layers": 4, "heads": 8, "kv_heads": 4, "intermediate": 512}


def settings(steps: int) -> dict:
    return dict(max_steps=steps, learning_rate=1e-3, per_device_batch_size=8, gradient_accumulation=1, optimizer="adamw_torch",
                warmup_ratio=0.0, lr_scheduler="constant", seed=0, threads=1, logging_every=1)


def run_workbench(recipe, convs, out: Path) -> tuple[float, int, float]:
    from workbench.train.trainer import train

    res = train(recipe, run_dir=out, prepared=convs)
    return res.tokens / res.train_seconds, res.tokens, res.train_seconds


def run_trl(recipe, convs, model_dir: str, out: Path) -> tuple[float, int, float]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t = recipe.train
    torch.set_num_threads(t.threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(t.seed)
    model = get_peft_model(model, LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    ds = Dataset.from_list([{"messages": [m.to_dict() for m in c.messages]} for c in convs])
    args = SFTConfig(
        output_dir=str(out), max_steps=t.max_steps, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
        per_device_train_batch_size=t.per_device_batch_size, optim=t.optimizer, seed=t.seed, data_seed=t.seed,
        max_length=recipe.model.max_length, assistant_only_loss=True, bf16=False, fp16=False, use_cpu=True,
        activation_checkpointing=False, report_to="none", save_strategy="no", logging_steps=t.logging_every, disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    metrics = trainer.train().metrics
    tokens = int(trainer._total_train_tokens)
    return tokens / metrics["train_runtime"], tokens, metrics["train_runtime"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("WORKBENCH_CACHE", str(Path(tempfile.gettempdir()) / "workbench-bench-cache"))

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    from workbench.data import ingest
    from workbench.recipe import from_dict
    from workbench.train.trainer import model_path

    recipe = from_dict({
        "name": "bench", "model": {"name": "tiny:chatml", "max_length": 256, "tiny": TINY},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0}, "train": settings(a.steps),
    })
    convs = ingest.load([REPO / "data" / "demo" / "train.jsonl"]).conversations[:800]
    model_dir = model_path(recipe.model)
    wb, trl = [], []
    with tempfile.TemporaryDirectory() as tmp:
        warm = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 5})})
        run_workbench(warm, convs, Path(tmp) / "warm-wb")  # first-run costs (allocator, kernels) count for neither
        run_trl(warm, convs, model_dir, Path(tmp) / "warm-trl")
        for i in range(a.rounds):  # alternate which goes first, so drifting load on a shared machine evens out
            order = ("wb", "trl") if i % 2 == 0 else ("trl", "wb")
            for who in order:
                if who == "wb":
                    wb.append(run_workbench(recipe, convs, Path(tmp) / f"wb{i}"))
                else:
                    trl.append(run_trl(recipe, convs, model_dir, Path(tmp) / f"trl{i}"))
    best_wb, best_trl = max(wb), max(trl)
    med_wb, med_trl = sorted(wb)[len(wb) // 2], sorted(trl)[len(trl) // 2]
    print(f"model: tiny chatml {TINY}, {a.steps} steps, batch 8, LoRA r16 all-linear, fp32 CPU, 1 thread, {len(convs)} conversations")
    for name, runs in (("workbench train", wb), ("TRL SFTTrainer + PEFT", trl)):
        print(f"{name:24s} " + "  ".join(f"{tps:8.0f} tok/s ({tok} tokens / {sec:.1f} s)" for tps, tok, sec in runs))
    print(f"best:   workbench {best_wb[0]:.0f} tok/s, TRL {best_trl[0]:.0f} tok/s, ratio {best_wb[0] / best_trl[0]:.3f} (target >= 0.95)")
    print(f"median: workbench {med_wb[0]:.0f} tok/s, TRL {med_trl[0]:.0f} tok/s, ratio {med_wb[0] / med_trl[0]:.3f}")


if __name__ == "__main__":
    main()
