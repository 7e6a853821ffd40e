"""Bench: can the demo's base model learn the demo task with a short CPU LoRA run, measurably?

    .venv/bin/python bench/demo_learnability.py [--steps 600] [--lr 1e-3] [--alpha 16] [--heldout 200] [--no-random-base]

Pretrains (or reuses) the demo base with workbench.train.pretrain, then trains a LoRA adapter (r=16,
alpha=16, all linear layers, assistant-only loss, plain torch loop) on the demo's training rows
rendered with the chat template, and scores base and base+adapter on the held-out rows: greedy
generation after the generation prompt, "#### (\\d+)" extracted and compared to the target.
It also scores the base on the same held-out stories in the corpus's own "Q: ... A:" form, which
shows the reading skill the base brings. The same LoRA run on the untrained model of the same
shape is the comparison: it says what the pretraining is for (--no-random-base skips it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEMO = REPO / "data" / "demo"
ANSWER = re.compile(r"#### (\d+)")


def demo_rows() -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """(train, heldout) conversations: the three training files' well-formed rows, minus eval/held-out copies and exact repeats."""
    train: list[list[dict[str, str]]] = []
    for line in (DEMO / "train.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            train.append(json.loads(line)["messages"])
        except (ValueError, KeyError):
            continue
    for line in (DEMO / "train_sharegpt.jsonl").read_text(encoding="utf-8").splitlines():
        conv = json.loads(line)["conversations"]
        train.append([{"role": {"human": "user", "gpt": "assistant"}[m["from"]], "content": m["value"]} for m in conv])
    with open(DEMO / "train_alpaca.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            train.append([{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}])
    heldout = [json.loads(x)["messages"] for x in (DEMO / "heldout.jsonl").read_text(encoding="utf-8").splitlines()]
    evals = [json.loads(x)["question"] for x in (DEMO / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
    blocked = {m[-2]["content"] for m in heldout} | set(evals)
    seen: set[str] = set()
    kept = []
    for conv in train:
        ok = (all(isinstance(m.get("content"), str) and m["content"] and m.get("role") in ("system", "user", "assistant") for m in conv)
              and conv[-1]["role"] == "assistant")
        key = json.dumps(conv)
        if ok and key not in seen and conv[-2]["content"] not in blocked:
            seen.add(key)
            kept.append(conv)
    return kept, heldout


def encode(tok: Any, conv: list[dict[str, str]], max_length: int = 256) -> tuple[list[int], list[int]]:
    out = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"][:max_length], out["assistant_masks"][:max_length]
    return ids, [i if m else -100 for i, m in zip(ids, mask)]


def generate(model: Any, tok: Any, prompts: list[list[int]], max_new: int = 32, batch: int = 50) -> list[str]:
    """Greedy continuations of token-id prompts, left-padded in batches."""
    import torch

    outs: list[str] = []
    pad = tok.pad_token_id
    model.eval()
    for s in range(0, len(prompts), batch):
        chunk = prompts[s : s + batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False)
        outs += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
    return outs


def score_chat(model: Any, tok: Any, heldout: list[list[dict[str, str]]]) -> tuple[float, list[str]]:
    """Exact match of "#### N" after the generation prompt."""
    prompts = [tok.apply_chat_template(c[:-1], tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"] for c in heldout]
    outs = generate(model, tok, prompts)
    hits = 0
    for conv, out in zip(heldout, outs):
        target = ANSWER.search(conv[-1]["content"]).group(1)  # type: ignore[union-attr]
        got = ANSWER.search(out)
        hits += bool(got and got.group(1) == target)
    return hits / len(heldout), outs


def score_reading(model: Any, tok: Any, heldout: list[list[dict[str, str]]]) -> float:
    """The base's reading in the corpus's own form: "story\\nQ: question\\nA:" -> the number."""
    prompts, targets = [], []
    for conv in heldout:
        story, _, question = conv[-2]["content"].rpartition(" How many ")
        prompts.append(tok(f"{story}\nQ: How many {question}\nA:")["input_ids"])
        targets.append(ANSWER.search(conv[-1]["content"]).group(1))  # type: ignore[union-attr]
    outs = generate(model, tok, prompts, max_new=6)
    return sum(re.match(r"\s*(\d+)", o) is not None and re.match(r"\s*(\d+)", o).group(1) == t for o, t in zip(outs, targets)) / len(targets)  # type: ignore[union-attr]


def train_lora(base: Path, train: list[list[dict[str, str]]], *, steps: int, lr: float, batch: int, r: int, alpha: int, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows = [encode(tok, c) for c in train]
    rng = random.Random(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    order: list[int] = []
    losses = []
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if len(order) < batch:
            more = list(range(len(rows)))
            rng.shuffle(more)
            order += more
        chunk = [rows[i] for i in order[:batch]]
        del order[:batch]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in chunk])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk])
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    k = max(1, steps // 10)
    return model, tok, {"steps": steps, "seconds": round(seconds, 1), "trainable": trainable,
                        "first_loss": round(sum(losses[:k]) / k, 3), "last_loss": round(sum(losses[-k:]) / k, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="a pretrained base folder (default: tiny-pretrained:chatml, built on first use)")
    ap.add_argument("--pretrain-steps", type=int)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=16)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--rows", type=int, help="train on the first ROWS training rows only (the demo recipe's data.limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-random-base", action="store_true", help="skip the LoRA run on the untrained model of the same shape")
    ap.add_argument("--show", type=int, default=3, help="print this many generations per model")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from workbench.train import pretrain

    from workbench.train import tiny

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    train, heldout = demo_rows()
    heldout = heldout[: args.heldout]
    train = train[: args.rows] if args.rows else train
    print(f"train rows {len(train)}, held-out rows {len(heldout)}")

    t0 = time.perf_counter()
    opts = {} if args.pretrain_steps is None else {"steps": args.pretrain_steps}
    base = args.base or pretrain.pretrain_base(pretrain.default_dir("chatml"), **opts)
    info = pretrain.cached(base) or {}
    print(f"base {base}: {info.get('parameters')} parameters, pretrain {info.get('steps_done')} steps in {info.get('seconds')} s "
          f"(loss {info.get('first_loss')} -> {info.get('last_loss')}); this call {time.perf_counter() - t0:.1f} s")

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    t = time.perf_counter()
    base_em, base_outs = score_chat(model, tok, heldout)
    reading = score_reading(model, tok, heldout)
    print(f"base: held-out #### exact match {base_em:.1%}; same stories as 'Q: .. A:' {reading:.1%} ({time.perf_counter() - t:.1f} s)")
    for o in base_outs[: args.show]:
        print("   ", repr(o))

    runs = [("pretrained base", base)]
    if not args.no_random_base:
        scratch = Path(tempfile.mkdtemp(prefix="wb-random-"))
        opts_ = {**pretrain.MODEL_OPTS, "seed": 0}
        runs.append(("untrained base", tiny.build(scratch / "m", "chatml", model=True, **opts_)))
    n = len(heldout)
    for label, path in runs:
        model, tok, fit = train_lora(path, train, steps=args.steps, lr=args.lr, batch=args.batch, r=args.r, alpha=args.alpha, seed=args.seed)
        t = time.perf_counter()
        em, outs = score_chat(model, tok, heldout)
        se = math.sqrt(max(em * (1 - em), 1e-9) / n)
        print(f"{label} + LoRA r={args.r} alpha={args.alpha} lr={args.lr} batch={args.batch}: {fit['steps']} steps in {fit['seconds']} s, "
              f"{fit['trainable']} trainable, loss {fit['first_loss']} -> {fit['last_loss']}; "
              f"held-out #### exact match {em:.1%} ± {se:.1%} (eval {time.perf_counter() - t:.1f} s)")
        for o in outs[: args.show]:
            print("   ", repr(o))


if __name__ == "__main__":
    main()
