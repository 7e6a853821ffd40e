"""Exact and near-duplicate removal (MinHash LSH, verified), clusters with reasons, and decontamination.

The order of decisions, each one final:

1. *Contaminated / leaked*: a row whose text equals an ``--against`` item (after normalisation),
   shares a not-too-common word n-gram with one (default 13 words), or is a verified near
   duplicate of one. It is removed whatever else it matches, and never kept in another's place.
2. *Exact*: rows whose normalised text (NFC, casefolded, whitespace folded) is the same; the
   ``--keep`` policy picks the one that stays.
3. *Near*: MinHash LSH over the remaining distinct texts proposes candidate pairs; a pair counts
   only if the exact Jaccard similarity of the two word-shingle sets is >= ``threshold``. Pairs are
   verified on demand while clusters are formed, so a pair whose later row is already claimed is
   never verified; an LSH bucket of more than ``bucket_cap`` rows (templated text) gives only the
   pairs that also share a second band (see ``kernels.bucket_pairs``), so work stays linear.

Conflicting answers (one prompt, answers that are not near duplicates) are found over every row
read, before any removal, and reported as a finding; they are never a removal reason.

Clusters are stars, not connected components. Rows are walked in ``--keep`` priority; a row not yet
claimed is kept and claims every unclaimed row verified similar to it. So every removed row is
similar >= threshold to the row kept in its place; in a chain A~B, B~C with A!~C (keep first), B
goes with A and C stays (union-find over the pairs would have removed C for a row it does not
resemble). Rows whose compared text has no words are never near duplicates; empty ones never
exact duplicates. The arrays behind these decisions are computed in ``decide``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.dedup.decide import (
    REASONS,
    Against,
    Decision,
    answer_hash,
    concat_features,
    decide,
    groups_conflict,
    scan_features,
)
from workbench.dedup.views import VIEWS, text_view
from workbench.errors import UsageError
from workbench.records import Conversation, Finding

if TYPE_CHECKING:
    from workbench.dedup.decontam import AgainstSet

__all__ = ["KEEPS", "REASONS", "Cluster", "DedupConfig", "DedupResult", "Removed", "dedup"]
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
    bucket_cap: int = 32
    """An LSH bucket of more rows than this (templated text) pairs only rows that also share a second
    band, each with at most the first bucket_cap such rows: linear work, recall kept for close pairs."""
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
    kept_source: str | None = None  # file:line (or file[row]) of the row kept in its place
    conflict: int | None = None  # its conflicting-answers group, when its prompt has other answers

    def info(self) -> dict[str, Any]:
        """The ``removed`` object: why, and which row stays in its place (id and file:line)."""
        return {
            "reason": self.reason,
            "cluster": self.cluster,
            "kept_id": self.kept_id,
            "kept_source": self.kept_source,
            "similarity": round(self.similarity, 4),
            "against_file": self.against_file,
            "against_item": self.against_item,
            "row": self.row,
            "source": str(self.conv.source),
            "detail": self.detail,
            "conflict": self.conflict,
        }

    def to_dict(self) -> dict[str, Any]:
        """The canonical row plus a ``removed`` object saying why."""
        return self.conv.to_dict() | {"removed": self.info()}


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



def against_features(sets: Sequence[AgainstSet], cfg: DedupConfig) -> Against | None:
    """The --against items scanned like rows, with their gram sets and n-gram table."""
    from workbench.dedup import minhash as mh

    ref = [(si, ii) for si, s in enumerate(sets) for ii in range(len(s.items))]
    if not ref:
        return None
    from workbench.dedup.decontam import ngram_table
    texts = [sets[si].items[ii].text(cfg.on) for si, ii in ref]
    norm = {"casefold": cfg.casefold, "nfc": cfg.nfc}
    scan = mh.scan_texts(texts, ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed, bands=cfg.bands, rows=cfg.rows,
                         scheme=cfg.scheme, **norm)  # fmt: skip
    buf, off = mh.pack(texts, **norm)
    grams = mh.gram_sets(buf, off, cfg.ngram, cfg.casefold)
    table = None
    if cfg.contam_ngram:
        table = ngram_table(texts, n=cfg.contam_ngram, common=cfg.contam_common, min_words=cfg.contam_min_words, **norm)
    return Against(scan, ref, grams, [s.reason for s in sets], table)


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
    ag = against_features(sets, cfg)
    perms = mh.permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    parts = []
    for lo in range(0, max(n, 1), cfg.chunk):
        chunk = convs[lo : lo + cfg.chunk]
        length = np.fromiter((sum(len(m.content) for m in c.messages) for c in chunk), np.int64, len(chunk))
        parts.append(scan_features([text_view(c, cfg.on) for c in chunk], [text_view(c, "prompt") for c in chunk],
                                   [answer_hash(text_view(c, "response")) for c in chunk], length, cfg, perms,
                                   ag.table if ag is not None else None))  # fmt: skip
        if on_progress:
            on_progress(min(lo + cfg.chunk, n), n)
    norm = {"nfc": cfg.nfc, "casefold": cfg.casefold}

    def grams(rows: np.ndarray) -> Any:
        return mh.gram_sets(*mh.pack([text_view(convs[r], cfg.on) for r in rows.tolist()], **norm), cfg.ngram, cfg.casefold)

    def check(groups: list[np.ndarray]) -> list[bool]:
        return groups_conflict([[text_view(convs[r], "response") for r in g.tolist()] for g in groups], cfg)

    d = decide(concat_features(parts), cfg, grams, check, ag)
    d.stats.update(against_items=len(ag.ref) if ag else 0, kernels=mh.kernels().how)
    return result_of(d, convs, cfg, sets)


def result_of(d: Decision, convs: Sequence[Conversation], cfg: DedupConfig, sets: Sequence[AgainstSet]) -> DedupResult:
    """The decisions as records: Removed rows, Clusters and findings over ``convs`` (any Sequence)."""
    removed: list[Removed] = []
    for i in np.nonzero(~d.kept)[0].tolist():
        removed.append(removed_row(d, i, convs, sets))
    by_cluster: dict[int, list[Removed]] = {}
    for r in removed:
        if r.cluster:
            by_cluster.setdefault(r.cluster, []).append(r)
    clusters = [
        Cluster(c, int(k), convs[int(k)], [r.row for r in by_cluster[c]], dict(Counter(r.reason for r in by_cluster[c])))
        for c, k in enumerate(d.cluster_rows.tolist(), 1)
    ]
    kept_rows = np.nonzero(d.kept)[0].tolist()
    counts = d.counts()
    assert counts["read"] == counts["kept"] + counts["removed"], counts
    findings = conflict_findings(d, lambda r: str(convs[r].source), lambda r: convs[r].id)
    return DedupResult([convs[i] for i in kept_rows], removed, clusters, findings, counts, kept_rows, cfg, list(sets), d.stats)


def removed_row(d: Decision, i: int, convs: Sequence[Conversation], sets: Sequence[AgainstSet]) -> Removed:
    """Row ``i`` (removed) as a Removed record."""
    reason = REASONS[int(d.reason[i])]
    conflict = d.conflict_of.get(i)
    if d.hit_set[i] >= 0:
        s = sets[int(d.hit_set[i])]
        return Removed(convs[i], reason, None, None, float(d.similarity[i]), s.path, s.items[int(d.hit_item[i])].id, i,
                       None, d.detail.get(i, ""), None, conflict)  # fmt: skip
    k = int(d.kept_row[i])
    return Removed(convs[i], reason, int(d.cluster[i]), convs[k].id, float(d.similarity[i]), row=i, kept_row=k,
                   kept_source=str(convs[k].source), conflict=conflict)  # fmt: skip


def conflict_findings(d: Decision, source: Callable[[int], str], row_id: Callable[[int], str]) -> list[Finding]:
    """The conflicting-answers finding: how many prompts, their rows (file:line), a hint."""
    groups = d.conflicts
    if not groups:
        return []
    rows = sum(len(g) for g in groups)
    return [
        Finding(
            "conflicting_answers",
            "warning",
            f"{len(groups)} prompts appear with different answers ({rows} rows)",
            [row_id(g[0]) for g in groups[:20]],
            "the same prompt with two answers teaches the model to guess: keep one answer per prompt "
            "(workbench dedup --on prompt --keep longest) or fix the data",
            {"groups": [[source(r) for r in g] for g in groups[:50]], "total": len(groups),
             "rows": sorted(r for g in groups for r in g)},
        )  # fmt: skip
    ]
