"""The competitor as a user would run it: a JSONL file deduplicated with rensa's own keep-first deduplicator.

    .venv/bin/python bench/rensa_dedup.py data.jsonl kept.jsonl removed_lines.txt

Reads each row (user + assistant turns, as workbench compares them), shingles it into 5-word
shingles (lowercased words of letters, digits and non-ASCII), and feeds the shingles to
``rensa.RMinHashDeduplicator(threshold=0.8, num_perm=128, use_lsh=True, num_bands=16).add_pairs``,
the batch keep-first path rensa's README recommends (a row is a duplicate when an LSH candidate
before it has estimated Jaccard >= 0.8; no exact check). Writes kept lines as they were and the
1-based line numbers of removed rows. ``bench/dedup_cli.py`` races this against ``workbench dedup``.
"""

from __future__ import annotations

import json
import re
import sys

NGRAM = 5
WORD = re.compile(r"[a-z0-9\x80-\U0010ffff]+")
BATCH = 50_000


def shingles(text: str) -> list[str]:
    words = WORD.findall(text.lower())
    if len(words) < NGRAM:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)]


def main() -> None:
    from rensa import RMinHashDeduplicator

    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    src, kept_path, removed_path = sys.argv[1:4]
    dd = RMinHashDeduplicator(threshold=0.8, num_perm=128, use_lsh=True, num_bands=16)
    with open(src, "rb") as fh, open(kept_path, "wb") as kept, open(removed_path, "w") as removed:
        batch: list[tuple[int, bytes, list[str]]] = []

        def flush() -> None:
            flags = dd.add_pairs((str(n), sh) for n, _, sh in batch)
            for (n, line, _), keep in zip(batch, flags):
                if keep:
                    kept.write(line)
                else:
                    removed.write(f"{n}\n")
            batch.clear()

        for n, line in enumerate(fh, 1):
            row = json.loads(line)
            text = "\n".join(m["content"] for m in row["messages"] if m["role"] != "system")
            batch.append((n, line, shingles(text)))
            if len(batch) >= BATCH:
                flush()
        flush()


if __name__ == "__main__":
    main()
