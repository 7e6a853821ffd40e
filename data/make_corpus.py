"""Writes the demo base model's pretraining corpus, data/corpus/reading.txt (deterministic; run: python data/make_corpus.py).

The corpus teaches a skill, not the demo's answer format (why: workbench/train/pretrain.py). Documents
are separated by a blank line; by share:

- reading (55%): a short story of who holds how many of what, then one or more questions and
  answers in plain-text forms ("Q: ... / A: 439", "Answer: Sam has 439 cups, so the answer is
  439.", the fact restated after the question). 70% ask about the first person named, as the
  demo's stories do; the rest about anyone, with more names, things and verbs than the demo.
- recall (20%): "Wes 218, Fay 996." then "Lookup: Fay: 996. Wes: 218.", finding a number by a name.
- repeat (10%): facts said twice ("Once more: ..."), the plainest copying.
- marker (10%): the GSM8K final-answer line "#### N" after other text (a receipt total, a
  score), so the marker is a known token with a known job.
- plain (5%): the workbench tiny tokenizer's filler sentences.

No document is a chat: no chat-template tokens, no "#### N" after a story. A document holding a
fact sentence ("Sam has 439 cups.") of the demo's held-out or eval items is left out, so the base
model has never read a fact it is scored on.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The demo's names, things and verbs (data/generate.py), and more of each.
NAMES = ["Sam", "Ana", "Lee", "Mia", "Tom", "Ivy", "Raj", "Zoe", "Max", "Eva", "Ben", "Kim", "Leo", "Amy", "Jon", "Uma",
         "Ada", "Bob", "Cal", "Dan", "Eli", "Fay", "Gus", "Hal", "Ida", "Jay", "Kai", "Liz", "Ned", "Oli", "Pam", "Roy",
         "Sue", "Ted", "Val", "Wes", "Yan", "Zed", "Nia", "Ola"]
THINGS = ["cups", "apples", "books", "coins", "pens", "shells", "cards", "stamps", "marbles", "plates", "kites", "rocks",
          "hats", "eggs", "keys", "boxes", "bags", "toys", "nuts", "beads", "bowls", "shirts", "leaves", "bricks"]
VERBS = ["has", "owns", "keeps", "collected", "found", "bought", "holds", "made", "won", "sold"]
FILLER = ["It is a sunny day.", "The shop is busy.", "Everyone is at home.", "The box is on the table.",
          "It rained last night.", "The bus was late.", "The park is quiet.", "A dog barks outside.",
          "The room is warm.", "School starts at nine.", "The market opens early.", "The lamp is on."]
MARKER_LINES = [
    "The receipt shows a total of {n} dollars.",
    "The team scored {n} points in the final game.",
    "The answer is on page {n} of the book.",
    "The train to the city leaves from platform {n}.",
    "The new bridge is {n} meters long.",
    "The library lent out {n} books this week.",
    "Counting every seat, the hall holds {n} people.",
    "The farm sold {n} eggs at the market.",
]
MARKER_FORMS = ["{line}\n#### {n}", "{line} So the result is {n}.\n#### {n}", "Final count: {n}\n#### {n}"]

_FACT = re.compile(r"([A-Z][a-z]+ [a-z]+ \d+ [a-z]+\.)")


def fact(name: str, verb: str, n: int, thing: str) -> str:
    return f"{name} {verb} {n} {thing}."


def reading(rng: random.Random, banned: set[str]) -> str:
    """A story with 2-3 holders and maybe filler, a question about one of them, and its answer."""
    people = rng.sample(NAMES, rng.choice([2, 2, 3]))
    verb = rng.choice(VERBS) if rng.random() < 0.7 else None  # the demo repeats one verb; often do the same
    facts = []
    for p in people:
        facts.append((p, verb or rng.choice(VERBS), rng.randint(10, 999), rng.choice(THINGS)))
    if any(fact(*f) in banned for f in facts):
        return ""
    parts = [fact(*f) for f in facts]
    for filler in rng.sample(FILLER, rng.choice([0, 1, 1, 2])):
        parts.insert(rng.randint(0, len(parts)), filler)
    story = " ".join(parts)
    # Mostly one question about the first person named, as in the demo's stories; sometimes
    # questions about the others too, so names must be read rather than positions counted.
    asked = [facts[0]] if rng.random() < 0.7 else rng.sample(facts, rng.randint(1, len(facts)))
    form = rng.randrange(4)
    answers = []
    for name, v, n, thing in asked:
        question = f"How many {thing} does {name} have?"
        said = fact(name, v, n, thing)
        answers.append(
            f"{question} {said}" if form == 0
            else f"Q: {question}\nA: {n}" if form == 1
            else f"Question: {question}\nAnswer: {said[:-1]}, so the answer is {n}." if form == 2
            else f"{question}\nThe story says: {said} The answer is {n}."
        )
    if form == 0:
        return f"{story} " + " ".join(answers)
    return ("Story: " if form == 2 else "") + story + "\n" + "\n".join(answers)


def recall(rng: random.Random) -> str:
    """A list of who has how many and lookups into it: the plainest form of finding a number by a name."""
    people = rng.sample(NAMES, rng.randint(3, 6))
    counts = {p: rng.randint(10, 999) for p in people}
    lookups = rng.choices(people, k=rng.randint(3, 6))
    return ", ".join(f"{p} {counts[p]}" for p in people) + ".\nLookup: " + " ".join(f"{p}: {counts[p]}." for p in lookups)


def repeat(rng: random.Random) -> str:
    """Facts said twice: copying a span read earlier."""
    said = " ".join(fact(p, rng.choice(VERBS), rng.randint(10, 999), rng.choice(THINGS)) for p in rng.sample(NAMES, rng.randint(2, 4)))
    return f"{said}\nOnce more: {said}"


def marker(rng: random.Random) -> str:
    n = rng.randint(10, 999)
    line = rng.choice(MARKER_LINES).format(n=n)
    return rng.choice(MARKER_FORMS).format(line=line, n=n)


def plain(rng: random.Random, pool: list[str]) -> str:
    return " ".join(rng.sample(pool, 3))


def banned_facts(demo: Path) -> set[str]:
    """Key fact sentences of the demo's held-out and eval items."""
    out: set[str] = set()
    for name in ("heldout.jsonl", "eval.jsonl"):
        path = demo / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                text = row["messages"][-1]["content"] if "messages" in row else row["answer"]
                out.update(_FACT.findall(text))
    return out


def make(docs: int = 8000, seed: int = 0, demo: Path = HERE / "demo") -> list[str]:
    rng = random.Random(seed)
    from workbench.train.tiny import corpus

    banned = banned_facts(demo)
    pool = [line for line in corpus(lines=2000, seed=seed)[2:] if "\n" not in line]  # one-line sentences only
    out: list[str] = []
    while len(out) < docs:
        r = rng.random()
        doc = (reading(rng, banned) if r < 0.55 else recall(rng) if r < 0.75 else repeat(rng) if r < 0.85
               else marker(rng) if r < 0.95 else plain(rng, pool))
        if doc and not any(f in doc for f in _FACT.findall(doc) if f in banned):
            out.append(doc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "corpus" / "reading.txt")
    ap.add_argument("--docs", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    docs = make(args.docs, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    print(f"{len(docs)} documents, {args.out.stat().st_size} bytes -> {args.out}")


if __name__ == "__main__":
    main()
