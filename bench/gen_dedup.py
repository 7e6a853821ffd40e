"""Make a dedup benchmark corpus: instruction rows (50-300 words) with planted exact and near duplicates.

    .venv/bin/python bench/gen_dedup.py --rows 100000 --out /tmp/dedup100k.jsonl
    .venv/bin/python bench/gen_dedup.py --rows 1000000 --out /tmp/dedup1m.jsonl
    .venv/bin/python bench/gen_dedup.py --rows 100000 --templated --out /tmp/templated100k.jsonl

Writes canonical messages JSONL (the first 12 words ask, the rest answer) and, beside it,
``<out>.truth.npz``: per row the planted group (-1: unrelated), kind (base/exact/near/far/single)
and the measured Jaccard similarity to the group's base (5-word shingles). See tests/dedup_gen.py.
``--templated`` writes the pathological corpus instead: rows filled into 40 long templates, so rows
share most of their wording and crowd the same LSH buckets (``dedup_gen.templated``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.dedup_gen import corpus, templated  # noqa: E402

KINDS = ("base", "exact", "near", "far", "single")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dup-share", type=float, default=0.2, help="share of rows that are planted duplicates")
    ap.add_argument("--templated", action="store_true", help="the pathological corpus: templated rows")
    args = ap.parse_args()
    t = time.perf_counter()
    if args.templated:
        p = templated(args.rows, seed=args.seed, measure="engine")
    else:
        p = corpus(args.rows, seed=args.seed, dup_share=args.dup_share, measure="engine")
    with open(args.out, "w", encoding="utf-8") as fh:
        for text in p.texts:
            words = text.split(" ")
            user, assistant = " ".join(words[:12]), " ".join(words[12:])
            fh.write(json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}))
            fh.write("\n")
    np.savez_compressed(
        f"{args.out}.truth.npz",
        group=np.array(p.group, dtype=np.int64),
        kind=np.array([KINDS.index(k) for k in p.kind], dtype=np.int8),
        jaccard=np.array(p.jaccard, dtype=np.float64),
    )
    print(f"wrote {args.rows} rows to {args.out} (+ .truth.npz): {len(p.expected_removed())} planted duplicates "
          f"to remove at J>=0.8, in {time.perf_counter() - t:.1f}s")  # fmt: skip


if __name__ == "__main__":
    main()
