"""The Ray engine's stages: pure functions over numpy batches or whole hash partitions, and the driver's decisions.

Keys stand for rows: ``file << FILE_BITS | acc`` (the input file's position, the row's position among that file's
accepted rows), so key order is input order and a row's global position is its file's base plus ``acc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.dedup.engine import DedupConfig
from workbench.dedup.ray_io import FILE_BITS

MASK = (1 << FILE_BITS) - 1


def order(length: np.ndarray, key: np.ndarray, keep: str) -> np.ndarray:
    """Indices in keep priority: input order (keys follow it), or longest / shortest first, ties in input order."""
    if keep == "first":
        return np.argsort(key, kind="stable")
    return np.lexsort((key, -length if keep == "longest" else length))


def sign(batch: dict[str, np.ndarray], cfg: DedupConfig) -> dict[str, np.ndarray]:
    """Exact key, folded length, word count and band hashes of each row's compared text."""
    from workbench.dedup import minhash as mh

    ok = batch["acc"] >= 0
    texts = [t if isinstance(t, str) else "" for t in batch["text"]]
    scan = mh.scan_texts(texts, ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed, bands=cfg.bands, rows=cfg.rows,
                         scheme=cfg.scheme, casefold=cfg.casefold, nfc=cfg.nfc)  # fmt: skip
    key = np.where(ok, (batch["file"].astype(np.int64) << FILE_BITS) | batch["acc"].astype(np.int64), -1)
    return {"key": key, "ok": ok, "id": np.asarray(batch["id"], dtype=object), "length": batch["length"].astype(np.int64),
            "x1": scan.exact[:, 0], "x2": scan.exact[:, 1], "flen": scan.folded_len, "words": scan.words, "bands": scan.bands}  # fmt: skip


def exact_groups(batch: dict[str, np.ndarray], keep: str) -> dict[str, np.ndarray]:
    """Within a partition of rows keyed by exact text: each non-representative row and its representative."""
    key, x1, x2 = batch["key"], batch["x1"], batch["x2"]
    prio = np.empty(len(key), np.int64)
    prio[order(batch["length"], key, keep)] = np.arange(len(key))
    o = np.lexsort((prio, x2, x1))
    new = np.ones(len(o), dtype=bool)
    new[1:] = (x1[o][1:] != x1[o][:-1]) | (x2[o][1:] != x2[o][:-1])
    rep = o[np.maximum.accumulate(np.where(new, np.arange(len(o)), 0))]
    dup = ~new
    return {"key": key[o][dup], "rep": key[rep][dup], "rep_id": np.asarray(batch["id"], dtype=object)[rep][dup]}


def explode(batch: dict[str, np.ndarray], dups: np.ndarray, parts: int) -> dict[str, np.ndarray]:
    """One row per (representative, band): the band's hash, partitioned by it."""
    keep = batch["ok"] & (batch["words"] > 0) & ~np.isin(batch["key"], dups)
    bands = batch["bands"][keep]
    n, b = bands.shape if bands.ndim == 2 else (0, 0)
    h = bands.reshape(-1)
    return {"band": np.tile(np.arange(b, dtype=np.int16), n), "h": h, "key": np.repeat(batch["key"][keep], b),
            "length": np.repeat(batch["length"][keep], b), "part": (h % np.uint64(parts)).astype(np.int64)}  # fmt: skip


def bucket_pairs(batch: dict[str, np.ndarray], keep: str, cap: int) -> dict[str, np.ndarray]:
    """Candidate pairs from the buckets of one partition: per band, rows in priority order, the local kernel."""
    from workbench.dedup import minhash as mh

    key, length, band, h = batch["key"], batch["length"], batch["band"], batch["h"]
    pri = order(length, key, keep)
    out: dict[str, list[np.ndarray]] = {"a": [], "b": [], "la": [], "lb": []}
    for bi in np.unique(band):
        sel = pri[band[pri] == bi]
        pi, pj, _ = mh.candidate_pairs(np.ascontiguousarray(h[sel]).reshape(-1, 1), cap)
        i, j = sel[pi], sel[pj]
        first = key[i] < key[j]
        lo, hi = np.where(first, i, j), np.where(first, j, i)
        for col, idx in (("a", lo), ("b", hi)):
            out[col].append(key[idx])
            out["l" + col].append(length[idx])
    return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in out.items()}


def unique_pairs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ab = np.stack([batch["a"], batch["b"]], axis=1)
    _, first = np.unique(ab, axis=0, return_index=True)
    return {k: batch[k][first] for k in ("a", "b", "la", "lb")}


def verify(batch: dict[str, np.ndarray], cfg: DedupConfig) -> dict[str, np.ndarray]:
    """Exact Jaccard of each candidate pair's shingle sets; only pairs at or above the threshold stay."""
    from workbench.dedup import minhash as mh

    k = len(batch["a"])
    texts = list(batch["ta"]) + list(batch["tb"])
    sims = mh.exact_jaccard(texts, np.arange(k), k + np.arange(k), ngram=cfg.ngram, casefold=cfg.casefold, nfc=cfg.nfc)
    ok = sims >= cfg.threshold
    return {"a": batch["a"][ok], "b": batch["b"][ok], "la": batch["la"][ok], "lb": batch["lb"][ok],
            "ida": batch["ida"][ok], "idb": batch["idb"][ok], "sim": sims[ok]}  # fmt: skip


def with_part(batch: dict[str, np.ndarray], col: str, parts: int) -> dict[str, np.ndarray]:
    """Add the hash partition of ``col`` (a hash or a key): rows that must meet share a partition."""
    return batch | {"part": (batch[col].astype(np.uint64) % np.uint64(parts)).astype(np.int64)}


def exact_rows(batch: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    """Rows with text to compare, partitioned by their exact key."""
    keep = batch["ok"] & (batch["flen"] > 0)
    sub = {k: batch[k][keep] for k in ("key", "length", "id", "x1", "x2")}
    return with_part(sub, "x1", parts)


def texts(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ok = batch["acc"] >= 0
    key = (batch["file"].astype(np.int64) << FILE_BITS) | batch["acc"].astype(np.int64)
    return {"key": key[ok], "id": np.asarray(batch["id"], dtype=object)[ok], "text": np.asarray(batch["text"], dtype=object)[ok]}


def file_counts(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    files = batch["file"].astype(np.int64)
    ok = batch["acc"] >= 0
    n = int(files.max()) + 1 if len(files) else 0
    return {"file": np.arange(n), "accepted": np.bincount(files[ok], minlength=n), "rejected": np.bincount(files[~ok], minlength=n)}


# --- the driver: clusters from the verified edges -------------------------------------------------


@dataclass
class Decisions:
    """Every removed row (sorted by key): the row kept in its place, its id, the similarity, near or exact."""

    key: np.ndarray
    kept: np.ndarray
    kept_id: np.ndarray
    sim: np.ndarray
    near: np.ndarray
    clusters: np.ndarray  # kept keys with members, sorted: cluster id = position + 1
    base: np.ndarray  # per input file: accepted rows in the files before it
    kept_source: dict[int, str] = field(default_factory=dict)  # kept key -> its "file:line" (``keeper_sources``)

    def position(self, key: np.ndarray) -> np.ndarray:
        return self.base[key >> FILE_BITS] + (key & MASK)


def greedy_stars(n: int, rank_order: np.ndarray, ei: np.ndarray, ej: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star clusters over verified edges, as the local engine forms them: walking nodes by priority, an
    unclaimed node is kept and claims its unclaimed neighbours. Returns each node's keeper (itself for
    keepers) and the edge that claimed it (-1 for keepers)."""
    ei, ej = np.asarray(ei, np.int64), np.asarray(ej, np.int64)
    src, dst = np.concatenate([ei, ej]), np.concatenate([ej, ei])
    via_all = np.concatenate([np.arange(len(ei)), np.arange(len(ei))])
    o = np.argsort(src, kind="stable")
    src, dst, via_all = src[o], dst[o], via_all[o]
    ptr = np.searchsorted(src, np.arange(n + 1))
    keeper = np.full(n, -1, np.int64)
    via = np.full(n, -1, np.int64)
    for u in np.asarray(rank_order, np.int64).tolist():
        if keeper[u] != -1:
            continue
        keeper[u] = u
        lo, hi = ptr[u], ptr[u + 1]
        if lo == hi:
            continue
        nb, ed = dst[lo:hi], via_all[lo:hi]
        free = keeper[nb] == -1
        nb, ed = nb[free], ed[free]
        nb, first = np.unique(nb, return_index=True)  # a neighbour met twice is claimed by its first edge
        keeper[nb], via[nb] = u, ed[first]
    return keeper, via


def decide(dups: dict[str, np.ndarray], edges: dict[str, np.ndarray], keep: str, base: np.ndarray) -> Decisions:
    """The local engine's steps 3-4 on the edges: greedy stars in priority order, then exact copies follow their
    representative (kept: removed as exact; near-removed: removed as near, in the same place)."""
    a, b = edges["a"].astype(np.int64), edges["b"].astype(np.int64)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    m, k = len(nodes), len(a)
    length = np.zeros(m, np.int64)
    ids = np.empty(m, dtype=object)
    length[inv[:k]], length[inv[k:]] = edges["la"], edges["lb"]
    ids[inv[:k]], ids[inv[k:]] = edges["ida"], edges["idb"]
    keeper, via = greedy_stars(m, order(length, nodes, keep), inv[:k], inv[k:])
    gone = keeper != np.arange(m)
    nkey, nkept, nid, nsim = nodes[gone], nodes[keeper[gone]], ids[keeper[gone]], edges["sim"][via[gone]]
    dkey, drep, did = dups["key"].astype(np.int64), dups["rep"].astype(np.int64), np.asarray(dups["rep_id"], dtype=object)
    at = np.clip(np.searchsorted(nkey, drep), 0, max(len(nkey) - 1, 0))
    follow = (nkey[at] == drep) if len(nkey) else np.zeros(len(drep), bool)
    key = np.concatenate([dkey, nkey])
    kept = np.concatenate([np.where(follow, nkept[at] if len(nkey) else drep, drep), nkept])
    kept_id = np.concatenate([np.where(follow, nid[at] if len(nkey) else did, did), nid])
    sim = np.concatenate([np.where(follow, nsim[at] if len(nkey) else 1.0, 1.0), nsim])
    near = np.concatenate([follow, np.ones(len(nkey), bool)])
    o = np.argsort(key, kind="stable")
    return Decisions(key[o], kept[o], kept_id[o], sim[o].astype(np.float64), near[o], np.unique(kept), base)


def keeper_sources(batch: dict[str, np.ndarray], clusters: np.ndarray) -> dict[str, np.ndarray]:
    """The source ("file:line") of each row of the batch that is kept with rows removed in its place."""
    import json

    acc = batch["acc"].astype(np.int64)
    key = np.where(acc >= 0, (batch["file"].astype(np.int64) << FILE_BITS) | acc, -1)
    hit = np.nonzero((acc >= 0) & np.isin(key, clusters))[0]
    return {"key": key[hit], "src": np.array([json.loads(batch["row"][i])["source"] for i in hit], dtype=object)}


def label(batch: dict[str, np.ndarray], d: Decisions) -> dict[str, Any]:
    """Each row as the line it is written as: kept (canonical row), removed (with its reason object) or rejected."""
    import json

    acc = batch["acc"].astype(np.int64)
    key = np.where(acc >= 0, (batch["file"].astype(np.int64) << FILE_BITS) | acc, -1)
    at = np.clip(np.searchsorted(d.key, key), 0, max(len(d.key) - 1, 0))
    hit = (acc >= 0) & (d.key[at] == key) if len(d.key) else np.zeros(len(key), bool)
    kinds, lines = [], []
    for i in range(len(key)):
        if acc[i] < 0:
            kinds.append("rejected")
            lines.append(batch["reject"][i])
        elif hit[i]:
            j = at[i]
            row = json.loads(batch["row"][i])
            row["removed"] = {
                "reason": "near" if d.near[j] else "exact", "cluster": int(np.searchsorted(d.clusters, d.kept[j])) + 1,
                "kept_id": d.kept_id[j], "kept_source": d.kept_source.get(int(d.kept[j])),
                "similarity": round(float(d.sim[j]), 4), "against_file": None, "against_item": None,
                "row": int(d.position(key[i : i + 1])[0]), "source": row["source"], "detail": "", "conflict": None,
            }  # fmt: skip
            kinds.append("removed")
            lines.append(json.dumps(row, ensure_ascii=False))
        else:
            kinds.append("kept")
            lines.append(batch["row"][i])
    return {"kind": np.array(kinds, dtype=object), "line": np.array(lines, dtype=object), "key": key}


