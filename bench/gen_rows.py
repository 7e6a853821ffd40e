"""Write N synthetic multi-turn chats as ShareGPT JSONL and as messages JSONL (same chats, seeded)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

# A few hundred words with a natural length spread; text is word salad but sized like real chats.
WORDS = (
    "the of and to in is that for it as with was on be by this are or an at from which have not "
    "but all can had one we were there their been if more when will would who so what about up out "
    "them some could into than then its only other time these two may first any new like our over "
    "such also most after how where much through back years before between many should because each "
    "number function value returns example question answer model training data dataset token tokens "
    "template assistant user system message conversation python string integer variable equation "
    "solution therefore total remaining dollars minutes percent average probability triangle "
    "rectangle circle area perimeter velocity temperature language translation summary paragraph "
    "explain describe calculate compare consider suppose however although nevertheless furthermore "
    "specifically approximately significantly implementation configuration optimisation evaluation"
).split()
SYSTEMS = [
    "You are a helpful assistant.",
    "You are a careful math tutor. Show your steps.",
    "Answer concisely and cite the relevant passage.",
]


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(lo, hi))
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".?!")


def chat(rng: random.Random) -> list[dict[str, str]]:
    """One conversation: an optional system prompt, then 1-3 user/assistant exchanges."""
    turns = []
    if rng.random() < 0.3:
        turns.append({"role": "system", "content": rng.choice(SYSTEMS)})
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        turns.append({"role": "user", "content": _text(rng, 6, 60)})
        turns.append({"role": "assistant", "content": _text(rng, 10, 160)})
    return turns


SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


def generate(rows: int, seed: int = 0, out: Path = OUT) -> tuple[Path, Path]:
    """Write ``sharegpt-{rows}.jsonl`` and ``messages-{rows}.jsonl`` under ``out`` (skipped when present)."""
    out.mkdir(parents=True, exist_ok=True)
    share, msgs = out / f"sharegpt-{rows}-{seed}.jsonl", out / f"messages-{rows}-{seed}.jsonl"
    if share.exists() and msgs.exists():
        return share, msgs
    rng = random.Random(seed)
    tmp_s, tmp_m = share.with_suffix(".tmp"), msgs.with_suffix(".tmp")
    with open(tmp_s, "w", encoding="utf-8") as fs, open(tmp_m, "w", encoding="utf-8") as fm:
        for _ in range(rows):
            turns = chat(rng)
            fm.write(json.dumps({"messages": turns}) + "\n")
            conv = [{"from": SHAREGPT_ROLE[t["role"]], "value": t["content"]} for t in turns]
            fs.write(json.dumps({"conversations": conv}) + "\n")
    tmp_s.rename(share)
    tmp_m.rename(msgs)
    return share, msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    for p in generate(args.rows, args.seed, args.out):
        print(f"{p}  {p.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
