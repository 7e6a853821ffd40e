"""Bench: `workbench check` (whole process) and render + mask + verify vs TRL's SFTTrainer dataset preparation.

    .venv/bin/python bench/mask.py [--n 20000] [--rounds 3] [--workers 2] [--max-length 2048] [--trl-num-proc 1]

Both sides use the Qwen2.5 fixture tokenizer with TRL's qwen2_5_training.jinja (generation tags),
the same conversations and the same max_length. TRL's side is `SFTTrainer._prepare_dataset` with
assistant_only_loss=True (tokenise, assistant masks, labels, truncation), timed in-process on a
dataset already in memory. Ours:
- `workbench check` as a user runs it, a whole process from start to exit (start-up, reading the
  JSONL, loading the tokenizer, the tokenizer-level probes, every row rendered, masked by tags and by
  render-and-diff, cross-checked and verified, parity and prefix checks, the report);
- the library's `render_many` (render + both masks + verification) in-process.
Rounds alternate the sides, so each ratio compares runs made under the same machine load; the
ratios' band is printed at the end.
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


def bench_check(path: Path, n: int, max_length: int, cpus: set[int] | None = None) -> float:
    """Seconds for the whole `workbench check` process on ``path`` (its report is parsed, then dropped);
    ``cpus``: the CPUs the process may use (it starts as many workers as it may use CPUs)."""
    import subprocess

    tok_dir = FIXTURES / "tokenizers" / "qwen2.5"
    template = FIXTURES / "templates" / "trl-qwen2_5_training.jinja"
    cmd = [sys.executable, "-m", "workbench", "check", str(path), "--model", str(tok_dir), "--template", str(template),
           "--max-length", str(max_length), "--json"]  # fmt: skip
    t = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=pin)
    seconds = time.perf_counter() - t
    if done.returncode not in (0, 1):
        sys.exit(f"workbench check failed ({done.returncode}): {done.stderr[-2000:]}")
    import json

    report = json.loads(done.stdout)
    assert report["rendered"] == n, report["rendered"]
    return seconds


def cpu_scaling(seconds: float = 2.0) -> float:
    """How much a second busy process adds on this machine: two pure-Python loops at once against one
    (2.0 on two real cores; shared or throttled virtual CPUs give less)."""
    import subprocess

    loop = f"import time\nt=time.perf_counter()\nn=0\nwhile time.perf_counter()-t<{seconds}:\n    for _ in range(10000): n+=1\nprint(n)"

    def run(k: int) -> int:
        procs = [subprocess.Popen([sys.executable, "-c", loop], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return sum(int(p.communicate()[0]) for p in procs)

    return run(2) / run(1)


def encode_floor(tokenizer, convs) -> float:
    """Seconds the tokenizer's own encode of every row's full render takes here (the renders made beforehand, not
    timed): the one step TRL and the check both run, with the check's fastest path (``Codec.encode_many``)."""
    from workbench.template.offsets import Codec

    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in convs]
    codec = Codec(tokenizer)
    codec.encode_many(texts[:256])
    t = time.perf_counter()
    for i in range(0, len(texts), 256):
        codec.encode_many(texts[i : i + 256])
    return time.perf_counter() - t


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
    ap.add_argument("--rounds", type=int, default=1, help="alternate the sides this many times; print the ratios' band")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--trl-num-proc", type=int, default=None, help="TRL's dataset_num_proc (default: its default, one process)")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--skip-library", action="store_true", help="time only the `workbench check` command (and TRL)")
    ap.add_argument("--one-cpu", action="store_true", help="also time both sides pinned to one CPU (work per row, whatever the machine's CPUs)")
    a = ap.parse_args()

    import json

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
    print(f"{a.n} conversations, {turns} messages; Qwen2.5 tokenizer + TRL qwen2_5_training.jinja; max_length {a.max_length}; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-mask-"))
    data = tmp / "conversations.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for c in convs:
            f.write(json.dumps({"messages": c}) + "\n")
    ratios: list[float] = []
    floors: list[tuple[float, float, float]] = []  # per round with --one-cpu: TRL, check on one CPU, TRL on one CPU
    for r in range(a.rounds):
        if a.rounds > 1:
            print(f"-- round {r + 1}")
        s_check = bench_check(data, a.n, a.max_length)
        print(f"workbench check (whole process, all checks, every row verified): {s_check:7.2f}s  {a.n / s_check:8.0f} rows/s")
        if not a.skip_library:
            s, ok, bad, agree = bench_ours(tokenizer, convs, a.workers, a.max_length)
            print(f"workbench render_many (render + tags & diff masks + verify), workers={a.workers}: {s:7.2f}s  {a.n / s:8.0f} rows/s  "
                  f"(verified ok {ok}, problems {bad}, derivations agree {agree})")  # fmt: skip
        if not a.skip_trl:
            s_trl, rows = bench_trl(tokenizer, convs, a.max_length, a.trl_num_proc)
            print(f"TRL SFTTrainer._prepare_dataset (assistant_only_loss, num_proc={a.trl_num_proc}): {s_trl:7.2f}s  {a.n / s_trl:8.0f} rows/s  "
                  f"({rows} rows, no verification)")  # fmt: skip
            ratios.append(s_trl / s_check)
            print(f"ratio: workbench check is {s_trl / s_check:.2f}x TRL's preparation")
        if a.one_cpu and not a.skip_trl:
            cpu = min(os.sched_getaffinity(0))
            s_one = bench_check(data, a.n, a.max_length, {cpu})
            allowed = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
            try:
                s_trl1, _ = bench_trl(tokenizer, convs, a.max_length, a.trl_num_proc)
            finally:
                os.sched_setaffinity(0, allowed)
            print(f"one CPU each: workbench check {a.n / s_one:.0f} rows/s, TRL {a.n / s_trl1:.0f} rows/s: {s_trl1 / s_one:.2f}x per CPU")
            floors.append((s_trl, s_one, s_trl1))
    if a.one_cpu:
        scaling = cpu_scaling()
        print(f"this machine's CPUs: two busy processes do {scaling:.2f}x the work of one")
    if a.one_cpu and floors:
        # What 3x would take here: the check's start-up (a few rows, whole process) is paid once, the rest is CPU per
        # row spread over the CPUs; the tokenizer's encode of each row is the floor of that CPU (TRL runs it too).
        small = tmp / "small.jsonl"
        small.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs[:8]), encoding="utf-8")
        start = min(bench_check(small, 8, a.max_length) for _ in range(2))
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
        try:
            enc = min(encode_floor(tokenizer, convs) for _ in range(2)) / a.n * 1e3
        finally:
            os.sched_setaffinity(0, allowed)
        s_trl, s_one, s_trl1 = floors[-1]
        per_row = (s_one - start) / a.n * 1e3
        budget = (s_trl / 3 - start) * min(scaling, len(allowed)) / a.n * 1e3
        print(f"per row, one CPU: TRL {s_trl1 / a.n * 1e3:.2f} ms; workbench check {per_row:.2f} ms after its {start:.1f}s start-up; "
              f"the tokenizer's encode of the row alone (both sides run it) {enc:.2f} ms")
        print(f"3x TRL's {s_trl:.1f}s in the last round needs the check within {s_trl / 3:.1f}s: at most {budget:.2f} ms of CPU per row "
              f"on these CPUs ({budget / max(enc, 1e-9):.2f}x the encode alone)")
    if len(ratios) > 1:
        print(f"band over {len(ratios)} rounds: {min(ratios):.2f}x - {max(ratios):.2f}x (median {sorted(ratios)[len(ratios) // 2]:.2f}x)")


if __name__ == "__main__":
    main()
