"""Corpora with planted exact and near duplicates at known Jaccard similarity, with their ground truth.

Used by tests/test_dedup.py (small corpora) and bench/gen_dedup.py (100k and 1M rows).

A planted *near* duplicate substitutes k words of its base at positions at least n apart, so each
substitution changes n shingles: J = (m - n k) / (m + n k) for m shingles, solved for k. The J
recorded is measured afterwards, exactly, on shingle sets. *Exact* copies differ from their base
only in case and whitespace. *Far* rows are edited to a J below the threshold: they must stay.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(size: int = 20000, seed: int = 7) -> list[str]:
    """Pronounceable pseudo-words, deterministic for a seed."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words)


@dataclass
class Planted:
    """A corpus in file order and its truth: which rows are duplicates of which."""

    texts: list[str] = field(default_factory=list)
    group: list[int] = field(default_factory=list)  # planted group id per row; -1 for singletons
    kind: list[str] = field(default_factory=list)  # base | exact | near | far | single
    jaccard: list[float] = field(default_factory=list)  # measured J to the group's base (nan for base/single)

    def expected_removed(self, threshold: float = 0.8) -> set[int]:
        """Rows a keep-first dedup must remove: every exact/near (J >= threshold) member of a group
        except the first such member in file order (the base counts as a member)."""
        first: dict[int, int] = {}
        out: set[int] = set()
        for i, (g, k, j) in enumerate(zip(self.group, self.kind, self.jaccard)):
            if g < 0 or not (k == "base" or k == "exact" or (k == "near" and j >= threshold)):
                continue
            if g in first:
                out.add(i)
            else:
                first[g] = i
        return out


def edit_to(words: list[str], target: float, rng: random.Random, vocab: list[str], ngram: int = 5) -> list[str]:
    """A copy of ``words`` with word substitutions chosen to land near Jaccard ``target`` on n-gram shingles."""
    m = max(len(words) - ngram + 1, 1)
    k = max(1, round(m * (1 - target) / (ngram * (1 + target))))
    slots = list(range(ngram - 1, len(words) - ngram + 1, ngram))  # interior: each changes n shingles
    rng.shuffle(slots)
    out = list(words)
    for p in slots[:k]:
        out[p] = rng.choice(vocab) + "x"  # the suffix keeps a substitute from re-creating a shingle
    return out


def jaccard_py(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard of the engine's shingle sets, in plain Python (independent of the numba code)."""
    from workbench.dedup.minhash import shingles_py

    sa, sb = set(shingles_py(a, ngram)), set(shingles_py(b, ngram))
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def exact_variant(text: str, rng: random.Random) -> str:
    """The same text after case/whitespace folding, spelled differently."""
    how = rng.randrange(4)
    if how == 0:
        return text
    if how == 1:
        return text.upper()
    if how == 2:
        return "  " + text.replace(" ", "  \n", 3) + "\n"
    return text.title()


def corpus(
    n_rows: int,
    *,
    seed: int = 0,
    words: tuple[int, int] = (50, 300),
    dup_share: float = 0.2,
    near: tuple[float, float] = (0.82, 0.98),
    far: tuple[float, float] = (0.45, 0.72),
    exact_share: float = 0.4,
    far_share: float = 0.15,
    ngram: int = 5,
    measure: str = "python",
    vocab: list[str] | None = None,
) -> Planted:
    """``n_rows`` rows: about ``dup_share`` of them planted duplicates (a share ``exact_share`` exact
    copies, the rest near duplicates with J drawn in ``near``), ``far_share`` rows edited to J in ``far``
    (must stay), the rest unrelated. Rows are shuffled; measured J goes in ``jaccard``.

    ``measure="engine"`` measures J with the numba engine (fast, for the 1M-row bench corpus)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    vocab = vocab or vocabulary()
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 0.9
    cdf = np.cumsum(zipf / zipf.sum())
    cdf[-1] = 1.0

    rows: list[tuple[str, int, str, float]] = []
    n_dup = int(n_rows * dup_share)
    n_far = int(n_rows * far_share)
    g = 0
    pending: list[tuple[int, int]] = []  # (row index, base row index) needing a measured J
    while len(rows) < n_rows:
        n_w = int(nrng.integers(words[0], words[1] + 1))
        base = [vocab[k] for k in np.searchsorted(cdf, nrng.random(n_w)).tolist()]
        text = " ".join(base)
        budget_left = n_rows - len(rows)
        if n_dup > 0 and budget_left >= 2:
            bi = len(rows)
            rows.append((text, g, "base", math.nan))
            copies = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
            had_near = False  # one near copy per group: two near copies of a base may not be near each other
            for _ in range(min(copies, budget_left - 1, n_dup)):
                if had_near or rng.random() < exact_share:
                    rows.append((exact_variant(text, rng), g, "exact", 1.0))
                else:
                    t = rng.uniform(*near)
                    pending.append((len(rows), bi))
                    rows.append((" ".join(edit_to(base, t, rng, vocab, ngram)), g, "near", math.nan))
                    had_near = True
                n_dup -= 1
            g += 1
        elif n_far > 0 and budget_left >= 2:
            bi = len(rows)
            rows.append((text, g, "base", math.nan))
            t = rng.uniform(*far)
            pending.append((len(rows), bi))
            rows.append((" ".join(edit_to(base, t, rng, vocab, ngram)), g, "far", math.nan))
            n_far -= 1
            g += 1
        else:
            rows.append((text, -1, "single", math.nan))
    texts = [r[0] for r in rows]
    js = [r[3] for r in rows]
    if pending:
        pi = np.array([p[0] for p in pending], dtype=np.int64)
        pj = np.array([p[1] for p in pending], dtype=np.int64)
        if measure == "engine":
            from workbench.dedup.minhash import exact_jaccard

            measured = exact_jaccard(texts, pi, pj, ngram=ngram)
        else:
            measured = [jaccard_py(texts[a], texts[b], ngram) for a, b in zip(pi, pj)]
        for (i, _), j in zip(pending, measured):
            js[i] = float(j)
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = Planted()
    for i in order:
        out.texts.append(texts[i])
        out.group.append(rows[i][1])
        out.kind.append(rows[i][2])
        out.jaccard.append(js[i])
    return out


def conversations(planted: Planted, *, prompt_words: int = 12, file: str = "planted.jsonl"):  # type: ignore[no-untyped-def]
    """The planted texts as user/assistant conversations: the first words ask, the rest answer."""
    from workbench.records import Conversation, Message, Source

    out = []
    for i, t in enumerate(planted.texts):
        parts = t.split(" ")
        user, assistant = " ".join(parts[:prompt_words]), " ".join(parts[prompt_words:])
        out.append(Conversation.make([Message("user", user), Message("assistant", assistant)], Source(file, i + 1)))
    return out


def templated(
    n_rows: int,
    *,
    seed: int = 0,
    templates: int = 40,
    template_words: tuple[int, int] = (40, 90),
    slots: tuple[int, int] = (1, 4),
    answer_words: tuple[int, int] = (2, 16),
    dup_share: float = 0.1,
    ngram: int = 5,
    measure: str = "python",
) -> Planted:
    """A pathological corpus: rows filled into a few dozen long templates, so rows of one template
    share most of their wording (Jaccard ~0.3-0.9 between them) and crowd the same LSH buckets.
    About ``dup_share`` of the rows are planted exact or near (J >= 0.8) copies of another row."""
    rng = random.Random(seed)
    vocab = vocabulary()
    common = vocab[:400]
    shapes = []
    for _ in range(templates):
        words = [rng.choice(common) for _ in range(rng.randint(*template_words))]
        where = sorted(rng.sample(range(1, len(words) - 1), rng.randint(*slots)))
        shapes.append((words, where))
    rows: list[tuple[str, int, str, float]] = []
    pending: list[tuple[int, int]] = []
    g = 0
    while len(rows) < n_rows:
        words, where = shapes[rng.randrange(templates)]
        filled = list(words)
        for p in where:
            filled[p] = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 2)))
        answer = " ".join(rng.choice(vocab) for _ in range(rng.randint(*answer_words)))
        text = " ".join(filled) + " " + answer
        if rng.random() < dup_share and n_rows - len(rows) >= 2:
            bi = len(rows)
            rows.append((text, g, "base", math.nan))
            if rng.random() < 0.5:
                rows.append((exact_variant(text, rng), g, "exact", 1.0))
            else:
                pending.append((len(rows), bi))
                rows.append((" ".join(edit_to(text.split(" "), rng.uniform(0.85, 0.97), rng, vocab, ngram)), g, "near", math.nan))
            g += 1
        else:
            rows.append((text, -1, "single", math.nan))
    return _finish(rows, pending, rng, ngram, measure)


def _finish(rows: list[tuple[str, int, str, float]], pending: list[tuple[int, int]], rng: random.Random,
            ngram: int, measure: str) -> Planted:  # fmt: skip
    """Measure the planted pairs' Jaccard and shuffle the rows (as ``corpus`` does)."""
    texts = [r[0] for r in rows]
    js = [r[3] for r in rows]
    if pending:
        pi = np.array([p[0] for p in pending], dtype=np.int64)
        pj = np.array([p[1] for p in pending], dtype=np.int64)
        if measure == "engine":
            from workbench.dedup.minhash import exact_jaccard

            measured = exact_jaccard(texts, pi, pj, ngram=ngram)
        else:
            measured = [jaccard_py(texts[a], texts[b], ngram) for a, b in zip(pi, pj)]
        for (i, _), j in zip(pending, measured):
            js[i] = float(j)
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = Planted()
    for i in order:
        out.texts.append(texts[i])
        out.group.append(rows[i][1])
        out.kind.append(rows[i][2])
        out.jaccard.append(js[i])
    return out
