"""Exact and near-duplicate removal (MinHash LSH, verified), clusters with reasons, and decontamination.

The order of decisions, each one final:

1. *Contaminated / leaked*: a row whose text equals an ``--against`` item (after normalisation),
   shares a not-too-common word n-gram with one (default 13 words), or is a verified near
   duplicate of one. It is removed whatever else it matches, and never kept in another's place.
2. *Exact*: rows whose normalised text (NFC, casefolded, whitespace folded) is the same; the
   ``--keep`` policy picks the one that stays.
3. *Near*: MinHash LSH over the remaining distinct texts proposes candidate pairs; a pair counts
   only if the exact Jaccard similarity of the two word-shingle sets is >= ``threshold``.

Clusters are stars, not connected components. Rows are walked in ``--keep`` priority; a row not yet
claimed is kept and claims every unclaimed row verified similar to it. So every removed row is
similar >= threshold to the row kept in its place; in a chain A~B, B~C with A!~C (keep first), B
goes with A and C stays (union-find over the pairs would have removed C for a row it does not
resemble). Rows whose compared text has no words are never near duplicates; empty ones never
exact duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.dedup.decontam import AgainstSet, ngram_overlap, ngram_table
from workbench.dedup.views import VIEWS, text_view
from workbench.errors import UsageError
from workbench.records import Conversation, Finding

REASONS = ("exact", "near", "contaminated", "leaked", "manual")
KEEPS = ("first", "longest", "shortest")
ProgressFn = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DedupConfig:
    """How rows are compared and which row of a cluster stays."""

    threshold: float = 0.8
    """Jaccard similarity of word-shingle sets at or above which two rows are near duplicates."""
    on: str = "conversation"
    """Text compared: conversation (user, assistant, tool turns), prompt (user, tool) or response (assistant).
    System prompts never count: they are shared boilerplate in most datasets."""
    keep: str = "first"
    """The row of a cluster that stays: first (file order), longest or shortest (characters in all turns)."""
    num_perm: int = 128
    """MinHash permutations."""
    ngram: int = 5
    """Words per shingle."""
    bands: int = 16
    """LSH bands. 16x8 finds ~99.6% of pairs at J=0.8 (candidates are verified, so recall is what counts)."""
    rows: int = 8
    """LSH rows per band; bands x rows <= num_perm."""
    seed: int = 1
    """Seed of the MinHash permutations (datasketch's)."""
    scheme: str = "affine32"
    """MinHash permutation scheme: affine32 (datasketch >= 2 default) or legacy (datasketch < 2)."""
    exact: bool = True
    """Find exact duplicates (after normalisation)."""
    near: bool = True
    """Find near duplicates with MinHash LSH (also used to match --against items)."""
    casefold: bool = True
    """Compare case-insensitively."""
    nfc: bool = True
    """Unicode NFC-normalise before comparing."""
    contam_ngram: int = 13
    """Words per n-gram for --against overlap; 0 turns n-gram matching off."""
    contam_min: int = 1
    """Shared n-grams with one item that make a row contaminated."""
    contam_common: float = 0.01
    """An n-gram found in more than this share of the --against items is boilerplate and ignored."""
    contam_min_words: int = 8
    """An --against item shorter than contam_ngram words is matched whole if it has at least this many."""
    bucket_cap: int = 256
    """In an LSH bucket bigger than this, rows are compared only with its first bucket_cap rows (by priority)."""
    chunk: int = 65536
    """Rows per engine batch (bounds memory; progress is reported per batch)."""

    def validate(self) -> None:
        """Raise a UsageError naming the flag of the first bad value."""
        checks = [
            (0.0 < self.threshold <= 1.0, "--threshold", "a number in (0, 1]"),
            (self.on in VIEWS, "--on", " | ".join(VIEWS)),
            (self.keep in KEEPS, "--keep", " | ".join(KEEPS)),
            (self.num_perm >= 1, "--num-perm", "a positive integer"),
            (self.ngram >= 1, "--ngram", "a positive integer"),
            (self.bands >= 1 and self.rows >= 1, "--bands/--rows", "positive integers"),
            (self.bands * self.rows <= self.num_perm, "--bands/--rows", f"bands x rows <= --num-perm ({self.num_perm})"),
            (self.scheme in ("affine32", "legacy"), "--scheme", "affine32 | legacy"),
            (self.contam_ngram >= 0, "--contam-ngram", "0 (off) or a positive integer"),
            (self.contam_min >= 1, "--contam-min", "a positive integer"),
            (0.0 <= self.contam_common <= 1.0, "--contam-common", "a share in [0, 1]"),
        ]
        for ok, flag, want in checks:
            if not ok:
                raise UsageError(f"{flag}: bad value", f"use {want}")


@dataclass(slots=True)
class Removed:
    """A row that left the set: why, which cluster, the row kept in its place, and how similar."""

    conv: Conversation
    reason: str  # one of REASONS
    cluster: int | None
    kept_id: str | None
    similarity: float
    against_file: str | None = None
    against_item: str | None = None
    row: int = -1  # 0-based position in the input
    kept_row: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The canonical row plus a ``removed`` object saying why."""
        return self.conv.to_dict() | {
            "removed": {
                "reason": self.reason,
                "cluster": self.cluster,
                "kept_id": self.kept_id,
                "similarity": round(self.similarity, 4),
                "against_file": self.against_file,
                "against_item": self.against_item,
                "row": self.row,
                "detail": self.detail,
            }
        }


@dataclass(slots=True)
class Cluster:
    """A kept row and the rows removed in its place."""

    id: int
    kept_row: int
    kept: Conversation
    members: list[int]  # removed rows, input order
    reasons: dict[str, int]

    @property
    def size(self) -> int:
        return 1 + len(self.members)


@dataclass(slots=True)
class DedupResult:
    """What dedup decided. ``kept`` and ``removed`` are in input order; rows read = kept + removed."""

    kept: list[Conversation]
    removed: list[Removed]
    clusters: list[Cluster]
    findings: list[Finding]
    counts: dict[str, int]
    kept_rows: list[int]
    config: DedupConfig
    against: list[AgainstSet] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _priority(convs: Sequence[Conversation], keep: str) -> np.ndarray:
    idx = np.arange(len(convs))
    if keep == "first":
        return idx
    length = np.fromiter((sum(len(m.content) for m in c.messages) for c in convs), np.int64, len(convs))
    return np.lexsort((idx, -length if keep == "longest" else length))


class _Views(Sequence[str]):
    """The compared text of each row, then ``extra`` texts, built on demand (slices and single rows)."""

    def __init__(self, convs: Sequence[Conversation], on: str, extra: list[str]) -> None:
        self.convs, self.on, self.extra = convs, on, extra

    def __len__(self) -> int:
        return len(self.convs) + len(self.extra)

    def __getitem__(self, i: Any) -> Any:
        n = len(self.convs)
        if isinstance(i, slice):
            lo, hi, _ = i.indices(len(self))
            return [text_view(c, self.on) for c in self.convs[lo:min(hi, n)]] + self.extra[max(lo - n, 0) : max(hi - n, 0)]
        i = int(i)
        return text_view(self.convs[i], self.on) if i < n else self.extra[i - n]


@dataclass(slots=True)
class _Hit:
    set: int
    item: int
    similarity: float
    detail: str


def _note(hits: dict[int, _Hit], row: int, hit: _Hit) -> None:
    if row not in hits or hit.similarity > hits[row].similarity:
        hits[row] = hit


def dedup(
    conversations: Iterable[Conversation],
    *,
    config: DedupConfig | None = None,
    against: list[AgainstSet] | None = None,
    on_progress: ProgressFn | None = None,
) -> DedupResult:
    """Decide, for every row, kept or removed (with reason, cluster, kept row and similarity)."""
    from workbench.dedup import minhash as mh

    cfg = config or DedupConfig()
    cfg.validate()
    convs = list(conversations)
    sets = list(against or [])
    n = len(convs)
    ev_ref = [(si, ii) for si, s in enumerate(sets) for ii in range(len(s.items))]
    ev_texts = [sets[si].items[ii].text(cfg.on) for si, ii in ev_ref]
    texts = _Views(convs, cfg.on, [])
    alltexts = _Views(convs, cfg.on, ev_texts)  # made chunk by chunk: never a second copy of every text
    norm = {"casefold": cfg.casefold, "nfc": cfg.nfc}
    scan = mh.scan_texts(
        alltexts, ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed, bands=cfg.bands, rows=cfg.rows,
        scheme=cfg.scheme, chunk=cfg.chunk, on_progress=on_progress, **norm,
    )  # fmt: skip
    rank = _priority(convs, cfg.keep)
    pos = np.empty(n, dtype=np.int64)
    pos[rank] = np.arange(n)
    has_text = scan.folded_len[:n] > 0

    # 1. contamination: exact text and n-gram overlap (near matches come with the LSH pass below)
    hits: dict[int, _Hit] = {}
    if ev_texts:
        ev_key = {
            (int(k[0]), int(k[1])): e for e, k in enumerate(scan.exact[n:]) if scan.folded_len[n + e] > 0
        }
        for i in np.nonzero(np.isin(scan.exact[:n, 0], scan.exact[n:, 0]) & has_text)[0]:
            e = ev_key.get((int(scan.exact[i, 0]), int(scan.exact[i, 1])))
            if e is not None:
                _note(hits, int(i), _Hit(*ev_ref[e], 1.0, "same text"))
        if cfg.contam_ngram:
            table = ngram_table(
                ev_texts, n=cfg.contam_ngram, common=cfg.contam_common, min_words=cfg.contam_min_words, **norm
            )
            best, shared = ngram_overlap(texts, table, **norm)
            for i in np.nonzero(shared >= cfg.contam_min)[0]:
                e, c = int(best[i]), int(shared[i])
                total = max(int(table.per_item[e]), 1)
                _note(hits, int(i), _Hit(*ev_ref[e], min(c / total, 1.0), f"{c} of {total} {cfg.contam_ngram}-grams"))

    # 2. exact groups among the rest: rep[i] is the highest-priority row with i's normalised text
    rep = np.arange(n)
    alive = has_text.copy()
    if hits:
        alive[list(hits)] = False
    if cfg.exact:
        idx = np.nonzero(alive)[0]
        order = idx[np.lexsort((pos[idx], scan.exact[idx, 1], scan.exact[idx, 0]))]
        k = scan.exact[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (k[1:, 0] != k[:-1, 0]) | (k[1:, 1] != k[:-1, 1])
        rep[order] = order[np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))]

    # 3. near duplicates (and near matches to --against items): LSH candidates, verified
    ei = ej = np.zeros(0, np.int64)
    esim = np.zeros(0)
    n_cand = 0
    if cfg.near:
        train = np.nonzero(alive & (rep == np.arange(n)) & (scan.words[:n] > 0))[0]
        train = train[np.argsort(pos[train], kind="stable")]
        evals = n + np.nonzero(scan.words[n:] > 0)[0]
        nodes = np.concatenate([evals, train])  # --against items first: they always stay in big buckets
        pi, pj = mh.candidate_pairs(scan.bands[nodes], cfg.bucket_cap)
        gi, gj = np.minimum(nodes[pi], nodes[pj]), np.maximum(nodes[pi], nodes[pj])
        useful = gi < n  # an --against item paired with another one tells nothing
        gi, gj = gi[useful], gj[useful]
        n_cand = len(gi)
        sims = mh.exact_jaccard(alltexts, gi, gj, ngram=cfg.ngram, **norm)
        ok = sims >= cfg.threshold
        for a, b, s in zip(gi[ok & (gj >= n)], gj[ok & (gj >= n)], sims[ok & (gj >= n)]):
            _note(hits, int(a), _Hit(*ev_ref[int(b) - n], float(s), "near duplicate"))
        inner = ok & (gj < n)
        ei, ej, esim = gi[inner], gj[inner], sims[inner]
        if hits:
            clean = ~np.isin(ei, list(hits)) & ~np.isin(ej, list(hits))
            ei, ej, esim = ei[clean], ej[clean], esim[clean]
    keeper, via = mh.greedy_stars(n, rank.astype(np.int64), ei.astype(np.int64), ej.astype(np.int64))

    # 4. every row: kept, or removed with its reason (Python touches removed rows only)
    hit_mask = np.zeros(n, dtype=bool)
    if hits:
        hit_mask[list(hits)] = True
        hit_mask |= hit_mask[rep]  # an exact copy of a contaminated text is contaminated too
    is_kept = ~hit_mask & (rep == np.arange(n)) & (keeper[rep] == rep)
    kept_rows = np.nonzero(is_kept)[0].tolist()
    removed: list[Removed] = []
    for i in np.nonzero(~is_kept)[0].tolist():
        r = int(rep[i])
        hit = hits.get(i) or hits.get(r)
        if hit is not None:
            s = sets[hit.set]
            removed.append(
                Removed(convs[i], s.reason, None, None, hit.similarity, s.path, s.items[hit.item].id, i, None, hit.detail)
            )
            continue
        k = int(keeper[r])
        if k == r:  # exact copy of a kept row
            removed.append(Removed(convs[i], "exact", None, convs[r].id, 1.0, row=i, kept_row=r))
        else:  # near duplicate of k (itself, or the text it is an exact copy of)
            removed.append(Removed(convs[i], "near", None, convs[k].id, float(esim[via[r]]), row=i, kept_row=k))
    clusters = _clusters(convs, removed)
    kept = [convs[i] for i in kept_rows]
    counts = _counts(n, kept, removed)
    assert counts["read"] == counts["kept"] + counts["removed"], counts
    findings = _conflicts(convs, kept_rows, removed, cfg)
    stats = {"candidate_pairs": n_cand, "verified_pairs": int(len(ei)), "against_items": len(ev_texts)}
    if on_progress:
        on_progress(len(alltexts), len(alltexts))
    return DedupResult(kept, removed, clusters, findings, counts, kept_rows, cfg, sets, stats)


def _clusters(convs: Sequence[Conversation], removed: list[Removed]) -> list[Cluster]:
    """Number the clusters by their kept row's position and write the ids into ``removed``."""
    by_keeper: dict[int, list[Removed]] = {}
    for r in removed:
        if r.kept_row is not None:
            by_keeper.setdefault(r.kept_row, []).append(r)
    out = []
    for cid, k in enumerate(sorted(by_keeper), 1):
        for r in by_keeper[k]:
            r.cluster = cid
        members = by_keeper[k]
        out.append(Cluster(cid, k, convs[k], [r.row for r in members], dict(Counter(r.reason for r in members))))
    return out


def _counts(n: int, kept: list[Conversation], removed: list[Removed]) -> dict[str, int]:
    by = Counter(r.reason for r in removed)
    return {"read": n, "kept": len(kept), "removed": len(removed), **{r: by.get(r, 0) for r in REASONS}}


def _conflicts(convs: Sequence[Conversation], kept_rows: list[int], removed: list[Removed], cfg: DedupConfig) -> list[Finding]:
    """Rows with the same prompt (after normalisation) and different answers: a different problem
    from duplication (the model is taught two answers), so it is a finding, not a removal reason.

    Compared as conversations or responses, two kept rows with the same prompt were not duplicates,
    so their answers differ. Compared as prompts, a removed row conflicts with the row kept in its
    place when their responses are not near duplicates (Jaccard < threshold)."""
    from workbench.dedup import minhash as mh

    norm = {"casefold": cfg.casefold, "nfc": cfg.nfc}
    conflicting: list[list[int]] = []
    if cfg.on == "prompt":
        pairs = [(r.kept_row, r.row) for r in removed if r.kept_row is not None]
        if not pairs:
            return []
        rows = sorted({x for p in pairs for x in p})
        at = {r: k for k, r in enumerate(rows)}
        responses = [text_view(convs[r], "response") for r in rows]
        pi = np.array([at[a] for a, _ in pairs], dtype=np.int64)
        pj = np.array([at[b] for _, b in pairs], dtype=np.int64)
        sims = mh.exact_jaccard(responses, pi, pj, ngram=cfg.ngram, **norm)
        by_keeper: dict[int, list[int]] = {}
        for (a, b), s in zip(pairs, sims):
            if s < cfg.threshold:
                by_keeper.setdefault(a, [a]).append(b)
        conflicting = [sorted(g) for _, g in sorted(by_keeper.items())]
    else:
        rows = list(kept_rows)
        pk, plen = mh.exact_keys([text_view(convs[r], "prompt") for r in rows], **norm)
        idx = np.nonzero(plen > 0)[0]
        order = idx[np.lexsort((idx, pk[idx, 1], pk[idx, 0]))]
        k = pk[order]
        same = (k[1:, 0] == k[:-1, 0]) & (k[1:, 1] == k[:-1, 1])
        start = 0
        for t in range(1, len(order) + 1):
            if t == len(order) or not same[t - 1]:
                if t - start > 1:
                    conflicting.append(sorted(rows[int(x)] for x in order[start:t]))
                start = t
        conflicting.sort()
    if not conflicting:
        return []
    rows = sum(len(g) for g in conflicting)
    return [
        Finding(
            "conflicting_answers",
            "warning",
            f"{len(conflicting)} prompts appear with different answers ({rows} rows)",
            [convs[g[0]].id for g in conflicting[:20]],
            "the same prompt with two answers teaches the model to guess: keep one answer per prompt "
            "(workbench dedup --on prompt --keep longest) or fix the data",
            {"groups": [[str(convs[r].source) for r in g] for g in conflicting[:50]], "total": len(conflicting)},
        )
    ]
