"""Bench: render + mask + verify 20,000 multi-turn conversations vs TRL's SFTTrainer dataset preparation.

    .venv/bin/python bench/mask.py [--n 20000] [--workers 2] [--max-length 2048] [--trl-num-proc 1]

Both sides use the Qwen2.5 fixture tokenizer with TRL's qwen2_5_training.jinja (generation tags),
the same conversations and the same max_length. TRL's side is `SFTTrainer._prepare_dataset` with
assistant_only_loss=True (tokenise, assistant masks, labels, truncation); ours renders, derives
the mask twice (tags + render-diff), cross-checks them and verifies every example.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FIXTURES = Path(os.environ.get("WORKBENCH_FIXTURES", REPO.parent / "shared" / "fixtures"))

WORDS = (
    "the model reads each token and learns which answer follows a question about numbers apples trains "
    "rivers cities because therefore first second finally total cost price week hour minute friend school "
    "explain why how what when add subtract multiply divide result check clean data row column value"
).split()


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.3:
        text += f"\n\n{rng.randint(1, 99)} + {rng.randint(1, 99)} = {rng.randint(2, 198)}"
    if rng.random() < 0.2:
        text += f"\n#### {rng.randint(0, 999)}"
    return text


def conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        conv = []
        if rng.random() < 0.5:
            conv.append({"role": "system", "content": sentence(rng, 4, 12)})
        for _ in range(rng.randint(1, 4)):
            conv.append({"role": "user", "content": sentence(rng, 5, 40)})
            conv.append({"role": "assistant", "content": sentence(rng, 10, 120)})
        out.append(conv)
    return out


def bench_ours(tokenizer, convs, workers: int, max_length: int) -> tuple[float, int, int, int]:
    from workbench.template import batch

    t = time.perf_counter()
    ok = bad = agree = 0
    for res in batch.render_many(tokenizer, convs, workers=workers, max_length=max_length, check=True):
        ok += res.ok
        bad += not res.ok
        agree += res.agree is True
    return time.perf_counter() - t, ok, bad, agree


def bench_trl(tokenizer, convs, max_length: int, num_proc: int | None) -> tuple[float, int]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from workbench.train import tiny

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    model = AutoModelForCausalLM.from_pretrained(tiny.build(tmp / "tiny", "chatml"))
    args = SFTConfig(
        output_dir=str(tmp / "out"),
        assistant_only_loss=True,
        max_length=max_length,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        dataset_num_proc=num_proc,
    )
    small = Dataset.from_list([{"messages": convs[0]}])
    trainer = SFTTrainer(model=model, args=args, train_dataset=small, processing_class=tokenizer)
    data = Dataset.from_list([{"messages": c} for c in convs])
    t = time.perf_counter()
    prepared = trainer._prepare_dataset(data, tokenizer, args, False, None, "bench")
    seconds = time.perf_counter() - t
    return seconds, len(prepared)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--trl-num-proc", type=int, default=None, help="TRL's dataset_num_proc (default: its default, one process)")
    ap.add_argument("--skip-trl", action="store_true")
    a = ap.parse_args()

    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    from workbench.template.tokenizer import load_tokenizer

    disable_progress_bar()
    hf_logging.set_verbosity_error()
    tok_dir = FIXTURES / "tokenizers" / "qwen2.5"
    template = FIXTURES / "templates" / "trl-qwen2_5_training.jinja"
    if not tok_dir.is_dir():
        sys.exit(f"fixtures not found at {FIXTURES}")
    tokenizer = load_tokenizer(tok_dir, template=template)
    convs = conversations(a.n)
    turns = sum(len(c) for c in convs)
    print(f"{a.n} conversations, {turns} messages; Qwen2.5 tokenizer + TRL qwen2_5_training.jinja; max_length {a.max_length}")

    s, ok, bad, agree = bench_ours(tokenizer, convs, a.workers, a.max_length)
    print(f"workbench render+mask(tags & diff)+verify, workers={a.workers}: {s:6.2f}s  {a.n / s:8.0f} ex/s  "
          f"(verified ok {ok}, problems {bad}, derivations agree {agree})")  # fmt: skip
    s1, *_ = bench_ours(tokenizer, convs[: max(1, a.n // 4)], 1, a.max_length)
    print(f"workbench, same, workers=1 (first {a.n // 4}):       {s1:6.2f}s  {(a.n // 4) / s1:8.0f} ex/s")
    if not a.skip_trl:
        s, rows = bench_trl(tokenizer, convs, a.max_length, a.trl_num_proc)
        print(f"TRL SFTTrainer._prepare_dataset (assistant_only_loss, num_proc={a.trl_num_proc}): {s:6.2f}s  {a.n / s:8.0f} ex/s  ({rows} rows, no verification)")


if __name__ == "__main__":
    main()
