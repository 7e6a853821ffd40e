"""The decisions of dedup over per-row arrays: contaminated, exact, near (verified stars), conflicting answers.

This is the engine's core, shared by ``engine.dedup`` (rows held as Conversations) and the file runner
(rows left in their files, read by worker processes). It sees rows only as ``Features`` (hashes and
lengths) plus two callbacks: one fetches a few rows' gram sets, one checks groups of rows for
conflicting answers (``groups_conflict`` over their response text). See ``engine``
for the order of decisions and why clusters are stars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.dedup import minhash as mh

REASONS = ("exact", "near", "contaminated", "leaked", "manual")
GramSets = tuple[np.ndarray, np.ndarray, np.ndarray]  # flat hashes, start bounds (len + 1), counts
FetchGrams = Callable[[np.ndarray], GramSets]  # rows → gram sets of their compared text, in that order
CheckGroups = Callable[[list[np.ndarray]], list[bool]]  # groups of rows (one prompt each) → answers conflict?


@dataclass(slots=True)
class Features:
    """What dedup needs of every row, as arrays (N rows)."""

    scan: mh.Scan  # of the compared text (--on)
    length: np.ndarray  # int64: characters in all turns (the --keep longest/shortest order)
    prompt: np.ndarray  # (N, 2) uint64: exact key of the prompt side (conflicting answers)
    prompt_len: np.ndarray  # int64: folded length of the prompt side (0: none)
    answer: np.ndarray  # int64: hash() of the response side as written (0: no response); see ``answer_hash``
    ngram_best: np.ndarray | None = None  # int64: --against item sharing most n-grams (-1: none)
    ngram_shared: np.ndarray | None = None  # int64: how many it shares


@dataclass(slots=True)
class Against:
    """The --against items as the core sees them: their scan, n-gram table, and (set, item) per item."""

    scan: mh.Scan
    ref: list[tuple[int, int]]
    grams: GramSets
    reasons: list[str]  # per set
    table: Any = None  # decontam.NgramTable or None


@dataclass(slots=True)
class Decision:
    """Per row: kept or removed, why, the row kept in its place and how similar; clusters; conflicts."""

    kept: np.ndarray  # bool
    reason: np.ndarray  # int8: index into REASONS, -1 for kept rows
    kept_row: np.ndarray  # int64: the row kept in its place (-1: none)
    similarity: np.ndarray  # float64
    hit_set: np.ndarray  # int64: --against set (-1: none)
    hit_item: np.ndarray  # int64: item in that set
    detail: dict[int, str]
    cluster: np.ndarray  # int64: 1-based cluster of the row (0: none); a kept row carries its cluster
    cluster_rows: np.ndarray  # int64: kept row of cluster k+1
    cluster_size: np.ndarray  # int64: rows in cluster k+1, kept row included
    conflicts: list[list[int]]  # rows with one prompt and different answers, a group each
    conflict_of: dict[int, int] = field(default_factory=dict)  # row → 1-based conflict group
    stats: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        n = len(self.kept)
        by = np.bincount(self.reason[self.reason >= 0], minlength=len(REASONS))
        return {"read": n, "kept": int(self.kept.sum()), "removed": int(n - self.kept.sum()),
                **{r: int(by[k]) for k, r in enumerate(REASONS)}}  # fmt: skip


def priority(length: np.ndarray, keep: str) -> np.ndarray:
    """Rows in the order they claim clusters: file order, or by length (ties in file order)."""
    idx = np.arange(len(length))
    if keep == "first":
        return idx
    return np.lexsort((idx, -length if keep == "longest" else length))


def decide(f: Features, cfg: Any, fetch_grams: FetchGrams, check: CheckGroups, against: Against | None = None) -> Decision:
    """Decide every row. ``cfg`` is an ``engine.DedupConfig``."""
    s = f.scan
    n = len(s.exact)
    rank = priority(f.length, cfg.keep)
    pos = np.empty(n, dtype=np.int64)
    pos[rank] = np.arange(n)
    has_text = s.folded_len > 0
    hit_set = np.full(n, -1, np.int64)
    hit_item = np.full(n, -1, np.int64)
    hit_sim = np.zeros(n)
    detail: dict[int, str] = {}

    def note(i: int, ref: tuple[int, int], sim: float, why: str) -> None:
        if hit_set[i] < 0 or sim > hit_sim[i]:
            hit_set[i], hit_item[i], hit_sim[i], detail[i] = ref[0], ref[1], sim, why

    # 1. contamination: the same text, or a shared n-gram (near matches come with the LSH pass below)
    if against is not None and len(against.ref):
        ev = against.scan
        ev_key = {(int(k[0]), int(k[1])): e for e, k in enumerate(ev.exact) if ev.folded_len[e] > 0}
        for i in np.nonzero(np.isin(s.exact[:, 0], ev.exact[:, 0]) & has_text)[0].tolist():
            e = ev_key.get((int(s.exact[i, 0]), int(s.exact[i, 1])))
            if e is not None:
                note(i, against.ref[e], 1.0, "same text")
        if f.ngram_best is not None and f.ngram_shared is not None and against.table is not None:
            per_item = against.table.per_item
            for i in np.nonzero(f.ngram_shared >= cfg.contam_min)[0].tolist():
                e, c = int(f.ngram_best[i]), int(f.ngram_shared[i])
                total = max(int(per_item[e]), 1)
                note(i, against.ref[e], min(c / total, 1.0), f"{c} of {total} {cfg.contam_ngram}-grams")

    # 2. exact groups among the rest: rep[i] is the highest-priority row with i's normalised text
    rep = np.arange(n)
    alive = has_text & (hit_set < 0)
    if cfg.exact:
        idx = np.nonzero(alive)[0]
        order = idx[np.lexsort((pos[idx], s.exact[idx, 1], s.exact[idx, 0]))]
        k = s.exact[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (k[1:, 0] != k[:-1, 0]) | (k[1:, 1] != k[:-1, 1])
        rep[order] = order[np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))]

    # 3. near duplicates (and near matches to --against items): LSH candidates, verified on demand
    keeper = np.arange(n)
    near_sim = np.ones(n)
    stats: dict[str, Any] = {"candidate_pairs": 0, "verified_pairs": 0, "big_buckets": 0}
    if cfg.near:
        train = np.nonzero(alive & (rep == np.arange(n)) & (s.words > 0))[0]
        train = train[np.argsort(pos[train], kind="stable")]  # node order = priority order
        n_ev = int((against.scan.words > 0).sum()) if against is not None else 0
        ev_nodes = np.nonzero(against.scan.words > 0)[0] if against is not None else np.zeros(0, np.int64)
        bands = np.concatenate([against.scan.bands[ev_nodes], s.bands[train]]) if n_ev else s.bands[train]
        pi, pj, big = mh.candidate_pairs(bands, cfg.bucket_cap)  # --against items first: they lead every bucket
        useful = pj >= n_ev  # an --against item paired with another one tells nothing
        pi, pj = pi[useful], pj[useful]
        stats.update(candidate_pairs=len(pi), big_buckets=int(big))
        in_pair = np.zeros(len(bands), bool)
        in_pair[pi] = in_pair[pj] = True
        tnodes = np.nonzero(in_pair[n_ev:])[0] + n_ev
        grams = fetch_grams(train[tnodes - n_ev]) if len(tnodes) else (np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros(0, np.int64))
        m = n_ev + len(train)
        at = np.full(m, -1, np.int64)
        at[tnodes] = np.arange(len(tnodes))
        if n_ev:
            ef, es, ec = against.grams  # type: ignore[union-attr]
            flat = np.concatenate([grams[0], ef])
            start = np.concatenate([grams[1][:-1], es[:-1] + len(grams[0]), [len(flat)]]).astype(np.int64)
            count = np.concatenate([grams[2], ec]).astype(np.int64)
            at[:n_ev] = len(tnodes) + ev_nodes  # against items' sets follow the rows' sets
            # every row-to-item candidate is verified (contamination wins over everything)
            ei = pi < n_ev
            if ei.any():
                sims = mh.kernels().jaccard_pairs(flat, start, count, at[pi[ei]], at[pj[ei]])
                stats["verified_pairs"] += int(ei.sum())
                for a, b, sim in zip(pi[ei].tolist(), pj[ei].tolist(), sims.tolist()):
                    if sim >= cfg.threshold:
                        note(int(train[b - n_ev]), against.ref[int(ev_nodes[a])], sim, "near duplicate")  # type: ignore[union-attr]
            pi, pj = pi[~ei] - n_ev, pj[~ei] - n_ev
            at = at[n_ev:]
            grams = (flat, start, count)
        live = hit_set[train] < 0
        kn, ks, verified = mh.stars(len(train), pi, pj, grams, at, live, cfg.threshold)
        stats["verified_pairs"] += int(verified)
        ok = kn >= 0
        keeper[train[ok]] = train[kn[ok]]
        near_sim[train[ok]] = ks[ok]

    # 4. every row: kept, or removed with its reason
    hit = hit_set >= 0
    hit |= hit[rep]  # an exact copy of a contaminated text is contaminated too
    from_rep = (hit_set < 0) & hit
    hit_set[from_rep], hit_item[from_rep], hit_sim[from_rep] = hit_set[rep[from_rep]], hit_item[rep[from_rep]], hit_sim[rep[from_rep]]
    for i in np.nonzero(from_rep)[0].tolist():
        detail[i] = detail[int(rep[i])]
    kept = ~hit & (rep == np.arange(n)) & (keeper[rep] == rep)
    reason = np.full(n, -1, np.int8)
    kept_row = np.full(n, -1, np.int64)
    sim = np.zeros(n)
    if against is not None and hit.any():
        codes = np.array([REASONS.index(r) for r in against.reasons], np.int8)
        reason[hit] = codes[hit_set[hit]]
        sim[hit] = hit_sim[hit]
    exact = ~kept & ~hit & (keeper[rep] == rep)
    reason[exact], kept_row[exact], sim[exact] = 0, rep[exact], 1.0
    near = ~kept & ~hit & ~exact
    reason[near], kept_row[near], sim[near] = 1, keeper[rep[near]], near_sim[rep[near]]
    cluster_rows, cluster, size = _clusters(kept_row)
    conflicts = conflict_groups(f, cfg, check)
    conflict_of = {r: g for g, rows in enumerate(conflicts, 1) for r in rows}
    return Decision(kept, reason, kept_row, sim, hit_set, hit_item, {i: detail[i] for i in np.nonzero(hit)[0].tolist()},
                    cluster, cluster_rows, size, conflicts, conflict_of, stats)  # fmt: skip


def _clusters(kept_row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clusters numbered by their kept row's position: each removed row with a kept row, and that row."""
    members = kept_row >= 0
    keepers, size = np.unique(kept_row[members], return_counts=True)
    cluster = np.zeros(len(kept_row), np.int64)
    cluster[members] = np.searchsorted(keepers, kept_row[members]) + 1
    cluster[keepers] = np.arange(1, len(keepers) + 1)
    return keepers, cluster, size + 1


def conflict_groups(f: Features, cfg: Any, check: CheckGroups) -> list[list[int]]:
    """Rows with the same prompt (after normalisation) whose answers are not near duplicates of each
    other, one sorted group per prompt. Found over every row read, before any removal, so which rows
    dedup keeps never hides a conflict. A prompt whose rows all carry the same answer (or the same
    compared text) is settled from the features; only the others are read again, by ``check``."""
    idx = np.nonzero((f.prompt_len > 0) & (f.answer != 0))[0]
    if len(idx) < 2:
        return []
    order = idx[np.lexsort((idx, f.prompt[idx, 1], f.prompt[idx, 0]))]
    k = f.prompt[order]
    new = np.ones(len(order), bool)
    new[1:] = (k[1:, 0] != k[:-1, 0]) | (k[1:, 1] != k[:-1, 1])
    starts = np.nonzero(new)[0]
    sizes = np.diff(np.append(starts, len(order)))
    multi = sizes > 1
    if not multi.any():
        return []
    order = order[np.repeat(multi, sizes)]  # only rows whose prompt repeats, group after group
    sizes = sizes[multi]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))

    def varies(col: np.ndarray) -> np.ndarray:
        return np.minimum.reduceat(col, starts) != np.maximum.reduceat(col, starts)

    open_ = varies(f.answer[order])
    if cfg.on != "prompt":  # the same compared text (and prompt) is the same answer
        open_ &= varies(f.scan.exact[order, 0]) | varies(f.scan.exact[order, 1])
    # read back one row per distinct answer (per distinct compared text too, unless --on prompt)
    gid = np.repeat(np.arange(len(sizes)), sizes)
    rep = _first_of(gid, f.answer[order])
    if cfg.on != "prompt":
        rep &= _first_of(gid, f.scan.exact[order, 0], f.scan.exact[order, 1])
    groups, reps = [], []
    for a, z, o in zip(starts.tolist(), sizes.tolist(), open_.tolist()):
        mine = order[a : a + z][rep[a : a + z]]
        if o and len(mine) > 1:
            groups.append(np.sort(order[a : a + z]))
            reps.append(np.sort(mine))
    if not groups:
        return []
    flags = check(reps)
    return sorted(g.tolist() for g, bad in zip(groups, flags) if bad)


def _first_of(gid: np.ndarray, *cols: np.ndarray) -> np.ndarray:
    """True where a position is the first of its group with its values in ``cols``."""
    pos = np.arange(len(gid))
    o = np.lexsort((pos, *cols[::-1], gid))
    first = np.ones(len(o), bool)
    same = gid[o][1:] == gid[o][:-1]
    for c in cols:
        same &= c[o][1:] == c[o][:-1]
    first[1:] = ~same
    out = np.zeros(len(gid), bool)
    out[o] = first
    return out


def groups_conflict(answers: Sequence[Sequence[str]], cfg: Any) -> list[bool]:
    """For groups of answers to one prompt each: whether two of them differ (Jaccard below the
    threshold against the group's first answer; exact copies after normalisation are one answer)."""
    texts = [t for g in answers for t in g]
    norm = {"casefold": cfg.casefold, "nfc": cfg.nfc}
    keys, lens = mh.exact_keys(texts, **norm)
    firsts: list[int] = []
    others: list[int] = []
    spans = []
    at = 0
    for g in answers:
        seen: set[tuple[int, int]] = set()
        mine = []
        for x in range(at, at + len(g)):
            key = (int(keys[x, 0]), int(keys[x, 1]))
            if lens[x] > 0 and key not in seen:
                seen.add(key)
                mine.append(x)
        spans.append((len(firsts), len(mine) - 1 if mine else 0))
        if len(mine) > 1:
            firsts += [mine[0]] * (len(mine) - 1)
            others += mine[1:]
        at += len(g)
    sims = mh.exact_jaccard(texts, np.array(firsts, np.int64), np.array(others, np.int64), ngram=cfg.ngram, **norm)
    return [bool(z) and bool((sims[lo : lo + z] < cfg.threshold).any()) for lo, z in spans]


def answer_hash(response: str) -> int:
    """A row's answer as one number, to tell repeated answers apart without reading them again: Python's
    string hash (the same in worker processes, which fork from this one); 0 for no answer."""
    return hash(response) if response.strip() else 0


def scan_features(
    texts: Sequence[str], prompts: Sequence[str], answers: Sequence[int], length: np.ndarray, cfg: Any,
    perms: tuple[np.ndarray, np.ndarray], table: Any = None,
) -> Features:  # fmt: skip
    """Features of rows given as strings (a chunk at a time): the compared text and the prompt side."""
    norm = {"nfc": cfg.nfc, "casefold": cfg.casefold}
    buf, off = mh.pack(texts, **norm)
    scan = mh.scan_packed(buf, off, perms, ngram=cfg.ngram, bands=cfg.bands, rows=cfg.rows,
                          legacy=cfg.scheme == "legacy", casefold=cfg.casefold)  # fmt: skip
    best = shared = None
    if table is not None and len(table.hashes):
        best, shared = mh.kernels().ngram_hits(buf, off, table.ks, cfg.casefold, table.hashes, table.items, table.max_items)
    pk, pl = mh.exact_keys(prompts, **norm)
    return Features(scan, length, pk, pl, np.array(answers, np.int64), best, shared)


def concat_features(parts: Sequence[Features]) -> Features:
    """One Features of several, in order."""
    if len(parts) == 1:
        return parts[0]
    cat = np.concatenate
    ng = all(p.ngram_best is not None for p in parts)
    return Features(
        mh.concat_scans([p.scan for p in parts]), cat([p.length for p in parts]),
        cat([p.prompt for p in parts]), cat([p.prompt_len for p in parts]), cat([p.answer for p in parts]),
        cat([p.ngram_best for p in parts]) if ng else None,  # type: ignore[misc]
        cat([p.ngram_shared for p in parts]) if ng else None,  # type: ignore[misc]
    )  # fmt: skip
