"""Writes the shipped demo dataset into data/demo/ (deterministic; run: python data/generate.py).

The task is one a small model can learn on a CPU in minutes: read a quantity out of a short
story and answer in GSM8K's `#### N` format. The training files carry planted defects that the
workbench must catch: exact and near duplicates, rows copied from the eval set, malformed rows,
rows far over the max length, a conversation whose last turn is not the assistant's, and
conflicting answers to one prompt. They are spread over three source formats (OpenAI messages,
ShareGPT and Alpaca) so ingestion has real work to do.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Sam", "Ana", "Lee", "Mia", "Tom", "Ivy", "Raj", "Zoe", "Max", "Eva", "Ben", "Kim", "Leo", "Amy", "Jon", "Uma"]
THINGS = ["cups", "apples", "books", "coins", "pens", "shells", "cards", "stamps", "marbles", "plates", "kites", "rocks"]
VERBS = ["has", "owns", "keeps", "collected", "found", "bought"]
FILLER = [
    "It is a sunny day.",
    "The shop is busy.",
    "Everyone is at home.",
    "The box is on the table.",
    "It rained last night.",
    "The bus was late.",
]
SYSTEM = "You answer questions about short stories. End with the answer as #### N."


def make_item(rng: random.Random, n: int | None = None) -> dict[str, str]:
    name, thing, verb = rng.choice(NAMES), rng.choice(THINGS), rng.choice(VERBS)
    n = rng.randint(10, 999) if n is None else n
    other = rng.choice([x for x in NAMES if x != name])
    m = rng.randint(10, 999)
    parts = [f"{name} {verb} {n} {thing}.", f"{other} {verb} {m} {rng.choice(THINGS)}."]
    if rng.random() < 0.5:
        parts.insert(rng.randint(0, 2), rng.choice(FILLER))
    question = " ".join(parts) + f" How many {thing} does {name} have?"
    answer = f"{name} {verb} {n} {thing}.\n#### {n}"
    return {"question": question, "answer": answer, "target": str(n)}


def to_messages(item: dict[str, str], system: bool) -> dict:
    msgs = [{"role": "system", "content": SYSTEM}] if system else []
    msgs += [{"role": "user", "content": item["question"]}, {"role": "assistant", "content": item["answer"]}]
    return {"messages": msgs}


def to_sharegpt(item: dict[str, str]) -> dict:
    return {"conversations": [{"from": "human", "value": item["question"]}, {"from": "gpt", "value": item["answer"]}]}


def to_alpaca(item: dict[str, str]) -> dict:
    return {"instruction": item["question"], "input": "", "output": item["answer"]}


def near_copy(rng: random.Random, text: str) -> str:
    """A small edit a MinHash pass should catch: a few words before the question (Jaccard near 0.9).

    At the start of the conversation the words change only one or two 5-word shingles; the same
    words in the middle would change five and fall below a 0.8 threshold.
    """
    return rng.choice(["Quick question:", "Please help.", "Hi there!", "One more:", "Question:"]) + " " + text


def generate(out: Path, *, rows: int = 3000, eval_items: int = 200, heldout: int = 200, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    seen: set[str] = set()

    def fresh() -> dict[str, str]:
        while True:
            it = make_item(rng)
            if it["question"] not in seen:
                seen.add(it["question"])
                return it

    eval_set = [fresh() for _ in range(eval_items)]
    held = [fresh() for _ in range(heldout)]
    train = [fresh() for _ in range(rows)]

    messages, sharegpt, alpaca = [], [], []
    for i, it in enumerate(train):
        r = i % 10
        if r < 6:
            messages.append(to_messages(it, system=rng.random() < 0.3))
        elif r < 8:
            sharegpt.append(to_sharegpt(it))
        else:
            alpaca.append(to_alpaca(it))

    planted = {"exact_duplicates": 0, "near_duplicates": 0, "contaminated": 0, "malformed": 0, "over_length": 0,
               "no_final_assistant": 0, "conflicting_answers": 0}
    for it in rng.sample(train, 60):  # exact duplicates
        messages.append(to_messages(it, system=False))
        planted["exact_duplicates"] += 1
    for it in rng.sample(train, 40):  # near duplicates
        messages.append({"messages": [{"role": "user", "content": near_copy(rng, it["question"])},
                                      {"role": "assistant", "content": it["answer"]}]})
        planted["near_duplicates"] += 1
    for it in rng.sample(eval_set, 25):  # eval items leaked into training
        sharegpt.append(to_sharegpt(it))
        planted["contaminated"] += 1
    for _ in range(8):  # far over any small max length
        it = fresh()
        story = " ".join(rng.choice(FILLER) for _ in range(120))
        messages.append(to_messages({**it, "question": story + " " + it["question"]}, system=False))
        planted["over_length"] += 1
    for _ in range(5):  # the conversation ends on the user: nothing to learn, no end of turn to train
        it = fresh()
        messages.append({"messages": [{"role": "user", "content": it["question"]},
                                      {"role": "assistant", "content": it["answer"]},
                                      {"role": "user", "content": "Are you sure?"}]})
        planted["no_final_assistant"] += 1
    for it in rng.sample(train, 6):  # one prompt, two different answers
        wrong = str(int(it["target"]) + 1)
        alpaca.append({"instruction": it["question"], "input": "", "output": it["answer"].replace(it["target"], wrong)})
        planted["conflicting_answers"] += 1

    rng.shuffle(messages)
    rng.shuffle(sharegpt)
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in messages]
    bad = [
        '{"messages": [{"role": "user", "content": "How many cups?"}, {"role": "assistant", "content": "#### 3"}',
        '{"messages": [{"role": "user", "content": "Tell me"}, {"role": "assistant", "content": ""}]}',
        '{"messages": [{"role": "narrator", "content": "Once upon a time"}, {"role": "assistant", "content": "#### 1"}]}',
        '{"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "#### 42"}]}',
    ]
    for j, b in enumerate(bad):  # malformed rows at fixed places
        lines.insert(97 * (j + 1), b)
        planted["malformed"] += 1
    (out / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "train_sharegpt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sharegpt), encoding="utf-8")
    import csv

    with open(out / "train_alpaca.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["instruction", "input", "output"])
        w.writeheader()
        w.writerows(alpaca)
    (out / "heldout.jsonl").write_text("".join(json.dumps(to_messages(it, False)) + "\n" for it in held), encoding="utf-8")
    (out / "eval.jsonl").write_text(
        "".join(json.dumps({"question": it["question"], "answer": it["answer"]}) + "\n" for it in eval_set), encoding="utf-8"
    )
    (out / "planted.json").write_text(json.dumps(planted, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "demo")
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    planted = generate(args.out, rows=args.rows, seed=args.seed)
    print(json.dumps(planted, sort_keys=True))


if __name__ == "__main__":
    main()
