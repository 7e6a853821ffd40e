"""Pretrains the demo's small base model from scratch on a shipped reading corpus, once, and caches it.

Why a pretrained base: a randomly initialised model scores 0% before and after any short LoRA run,
so a before/after comparison on it measures nothing. The demo base is instead trained from scratch
(all weights, next-token loss, 6,000 steps: 15 to 20 minutes on one thread of a shared 2-core CPU)
on data/corpus/reading.txt, written by data/make_corpus.py. That corpus teaches the *skill* the
demo task needs and withholds its *format*:

- short stories ("Sam has 439 cups. Ana has 12 pens.") with questions about who has how many,
  answered in plain-text forms: "Q: ... / A: 439", "Answer: Sam has 439 cups, so the answer is
  439.", the fact restated after the question. Most ask about the first person named, as the
  demo's stories do; the rest ask about anyone, so a name has to be read, not a position counted;
- name/number lookups and facts said twice: the plainest copying, which a model this small
  otherwise learns too slowly for the budget;
- the GSM8K final-answer marker "#### N" only after other kinds of text (a receipt total, a
  score), so the marker is a token the model knows, with the job of repeating the final number;
- no chat: no chat-template tokens, and no "#### N" after a story.

The loss is weighted to the answer spans (ANSWER_SPAN; CONTEXT_WEIGHT on the rest, 0 by
default): the stories' own tokens are random draws (names, counts), and spending the few
minutes' gradient on predicting them leaves the copying unlearned (measured: 1,200 unweighted
steps read at chance level; see bench/demo_learnability.py).

So the base can read the stories but has never seen the demo's answer, a chat-formatted
"Sam has 439 cups.\\n#### 439" after the assistant header: greedy generation from the chat prompt
scores 0% exact match on the held-out "#### N" answers, while the same stories asked in the
corpus's "Q: ... A:" form are answered about half the time. What a LoRA adapter trained on the
demo rows adds is the format (chat turn, restated fact, "#### N", end of turn) and sharper
reading in that format, which is what supervised fine-tuning adds to a real base model on
GSM8K-style data too. The corpus leaves out any story holding a fact of the demo's held-out or
eval items (see data/make_corpus.py), so the base has never read an item it is scored on.

The result is a plain Hugging Face model folder (tokenizer, config, weights), cached by a hash
of the options and the corpus bytes. The recipe spec `tiny-pretrained:<family>` resolves to
`default_dir(family)` via `resolve()`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

PRETRAIN_VERSION = 1  # bump when the training loop changes what a given set of options produces
MARKER = ".workbench-pretrain.json"
CORPUS_NAME = "data/corpus/reading.txt"

# Sized to learn the reading task in a quarter hour of one CPU thread: 523k parameters with the tiny
# chatml vocabulary (~1.2k tokens); see bench/demo_learnability.py for the measurements.
MODEL_OPTS: dict[str, Any] = {"hidden": 96, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 256}
# Long enough for every base measured to learn to copy a number's digits, which the demo's fine-tune builds on:
# 4,000 left one machine's seed-0 base copying partly (0.740 strict after the demo); README's table of steps.
STEPS = 6000
BATCH_SIZE = 16
LEARNING_RATE = 1e-2
CONTEXT_WEIGHT = 0.0

# The answer part of a reading document, whatever its form: after "A:", "Answer:", "The story
# says:" or the question itself, to the end of the line or the next question.
ANSWER_SPAN = re.compile(r"(?:\bA:|Answer:|The story says:|have\?|####|Lookup:|Once more:)([^\n]*?)(?= How many|\n|$)")

Progress = Callable[[dict[str, Any]], None]


def default_corpus() -> Path:
    """The shipped corpus: next to the package in a source checkout, else under the working directory."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        path = root / CORPUS_NAME
        if path.is_file():
            return path
    raise WorkbenchError(f"no pretraining corpus at {CORPUS_NAME}", "run from the workbench checkout, or pass corpus=PATH (python data/make_corpus.py writes it)")


def read_corpus(path: str | os.PathLike[str]) -> list[str]:
    """Documents of a corpus file: separated by blank lines."""
    text = Path(path).read_text(encoding="utf-8")
    docs = [d.strip("\n") for d in text.split("\n\n")]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise WorkbenchError(f"{path}: no documents", "documents are separated by blank lines")
    return docs


def options_hash(options: dict[str, Any], corpus_bytes: bytes) -> str:
    payload = json.dumps({"v": PRETRAIN_VERSION, **options}, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload + hashlib.sha256(corpus_bytes).digest()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")


def default_dir(family: str = "chatml", model: dict[str, Any] | None = None) -> Path:
    """Where `tiny-pretrained:<family>` lives: one folder per family, model options and corpus."""
    key = options_hash({"family": family, "model": model or {}}, default_corpus().read_bytes())[:10]
    return cache_root() / "pretrained" / f"{family}-{key}"


def resolve(spec: str, *, model: dict[str, Any] | None = None, on_progress: Progress | None = None) -> str:
    """`tiny-pretrained:<family>` -> the cached pretrained model folder, built on first use (15-20 CPU minutes)."""
    family = (spec.split(":", 1)[1] if ":" in spec else "") or "chatml"
    return str(pretrain_base(default_dir(family, model), family=family, model=model, on_progress=on_progress))


def cached(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a finished pretraining in ``out_dir`` (options, hash, losses), or None."""
    marker = Path(out_dir) / MARKER
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def pretrain_base(
    out_dir: str | os.PathLike[str],
    *,
    family: str = "chatml",
    corpus: str | os.PathLike[str] | None = None,
    seconds_budget: float | None = None,
    steps: int = STEPS,
    seed: int = 0,
    threads: int | None = 1,
    on_progress: Progress | None = None,
    model: dict[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    max_length: int = 256,
    context_weight: float = CONTEXT_WEIGHT,
) -> Path:
    """Build the tiny ``family`` tokenizer and model and train it from scratch on ``corpus``; cached.

    ``corpus``: a text file of documents separated by blank lines (default: the shipped
    data/corpus/reading.txt). ``steps`` of ``batch_size`` documents each, AdamW with warmup and
    cosine decay, seeded and single-threaded by default, so a rerun gives the same weights.
    ``seconds_budget`` stops early when training has run that long; the result then depends on
    the machine's speed, and the marker records the steps done. ``model``: tiny.build model and
    tokenizer options over MODEL_OPTS. ``on_progress`` gets {"step", "steps", "loss", "seconds"}.
    A second call with the same options and corpus returns ``out_dir`` at once.
    """
    corpus_path = Path(corpus) if corpus is not None else default_corpus()
    corpus_bytes = corpus_path.read_bytes()
    model_opts = {**MODEL_OPTS, **(model or {}), "seed": seed}
    options = {"family": family, "model": model_opts, "steps": steps, "seconds_budget": seconds_budget,
               "batch_size": batch_size, "learning_rate": learning_rate, "max_length": max_length, "seed": seed,
               "context_weight": context_weight}
    digest = options_hash(options, corpus_bytes)
    dest = Path(out_dir)
    done = cached(dest)
    if done is not None and done.get("hash") == digest:
        return dest
    if dest.exists() and any(dest.iterdir()) and done is None:
        raise WorkbenchError(f"{dest} exists and was not made by workbench pretrain", "give an empty or new folder")

    from workbench.outputs import atomic_path

    with atomic_path(dest) as tmp:  # a half-trained folder never appears at dest
        tmp.mkdir()
        result = _train(tmp, family, read_corpus(corpus_path), model_opts, steps=steps, seconds_budget=seconds_budget,
                        batch_size=batch_size, lr=learning_rate, max_length=max_length, seed=seed, threads=threads,
                        context_weight=context_weight, on_progress=on_progress)
        info = {"hash": digest, "options": options, "corpus": str(corpus_path),
                "corpus_sha256": hashlib.sha256(corpus_bytes).hexdigest(), **result}
        (tmp / MARKER).write_text(json.dumps(info, indent=2, default=str) + "\n")
    return dest


def doc_end_token(family: str) -> str:
    """The token that ends a pretraining document: the family's end of text, not its end of turn."""
    from workbench.train.tiny import FAMILIES

    fam = FAMILIES[family]
    others = [t for t in fam.generation_eos if t != fam.end_of_turn]
    return others[0] if others else fam.eos


def _seed_end_of_turn(model: Any, tok: Any, family: str) -> None:
    """Start the never-seen end-of-turn token as a copy of the trained end-of-text token.

    The corpus holds no chats, so the end-of-turn embedding is still random, and with tied
    embeddings a LoRA adapter (which leaves embeddings alone) can hardly learn to emit it: an
    adapted model would answer and never stop. Copying the one "this text is over" vector the
    base knows is the usual way to seed a new special token, and teaches the base no format.
    """
    import torch

    from workbench.train.tiny import FAMILIES

    end_of_turn, doc_end = FAMILIES[family].end_of_turn, doc_end_token(family)
    if end_of_turn == doc_end:
        return
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        emb[tok.convert_tokens_to_ids(end_of_turn)] = emb[tok.convert_tokens_to_ids(doc_end)]


def _epoch(encoded: list[list[int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One pass over the documents in batches of similar length (less padding), in random order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    window = batch_size * 32
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s : s + window], key=lambda i: len(encoded[i]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _train(dest: Path, family: str, docs: list[str], model_opts: dict[str, Any], *, steps: int,
           seconds_budget: float | None, batch_size: int, lr: float, max_length: int, seed: int,
           threads: int | None, context_weight: float, on_progress: Progress | None) -> dict[str, Any]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _fit(dest, family, docs, model_opts, steps=steps, seconds_budget=seconds_budget, batch_size=batch_size,
                    lr=lr, max_length=max_length, seed=seed, context_weight=context_weight, on_progress=on_progress)
    finally:
        torch.set_num_threads(before)


def _fit(dest: Path, family: str, docs: list[str], model_opts: dict[str, Any], *, steps: int,
         seconds_budget: float | None, batch_size: int, lr: float, max_length: int, seed: int,
         context_weight: float, on_progress: Progress | None) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.train import tiny

    with tempfile.TemporaryDirectory(prefix="workbench-pretrain-") as init:
        built = tiny.build(Path(init) / "m", family, model=True, **model_opts)
        tok = AutoTokenizer.from_pretrained(built)
        model = AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32)
        (built / tiny.MARKER).unlink()
        shutil.copytree(built, dest, dirs_exist_ok=True)  # the tokenizer files; weights are overwritten below

    end = tok.convert_tokens_to_ids(doc_end_token(family))
    pad = tok.pad_token_id if tok.pad_token_id is not None else end
    enc = tok(docs, return_offsets_mapping=True)
    encoded, weights = [], []
    for doc, ids, offsets in zip(docs, enc["input_ids"], enc["offset_mapping"]):
        spans = [m.span(1) for m in ANSWER_SPAN.finditer(doc)]
        w = [1.0 if any(a < e and b > s for s, e in spans) else context_weight for a, b in offsets]
        encoded.append(ids[: max_length - 1] + [end])
        weights.append(w[: max_length - 1] + [1.0])

    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    batches: list[list[int]] = []
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:  # linear warmup, cosine down to a tenth
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    for step in range(steps):
        if seconds_budget is not None and time.perf_counter() - start >= seconds_budget:
            break
        if not batches:
            batches = _epoch(encoded, batch_size, order_rng)
        picked = batches.pop()
        width = max(len(encoded[i]) for i in picked)
        ids = torch.full((len(picked), width), pad, dtype=torch.long)
        mask = torch.zeros((len(picked), width), dtype=torch.long)
        wts = torch.zeros((len(picked), width))
        for row, i in enumerate(picked):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1
            wts[row, : len(encoded[i])] = torch.tensor(weights[i])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
        w = wts[:, 1:].reshape(-1)
        loss = (nll * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if on_progress is not None:
            on_progress({"step": step + 1, "steps": steps, "loss": losses[-1], "seconds": time.perf_counter() - start})
    else:
        step = steps
    seconds = time.perf_counter() - start
    model.eval()
    _seed_end_of_turn(model, tok, family)
    model.save_pretrained(dest)
    k = max(1, len(losses) // 20)
    return {"steps_done": step, "seconds": round(seconds, 1),
            "first_loss": round(sum(losses[:k]) / k, 4) if losses else None,
            "last_loss": round(sum(losses[-k:]) / k, 4) if losses else None,
            "parameters": sum(p.numel() for p in model.parameters()), "documents": len(docs)}
