"""The dedup kernels' numba source for pairs: LSH candidate pairs (linear on crowded buckets), gram sets, exact Jaccard, verified stars."""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.dedup.kernels import _grams, _words


@njit
def _push(keys, nk, u, w, N):  # type: ignore[no-untyped-def]
    if nk == keys.shape[0]:
        grown = np.empty(2 * keys.shape[0], dtype=np.int64)
        grown[:nk] = keys[:nk]
        keys = grown
    keys[nk] = min(u, w) * N + max(u, w)
    return keys, nk + 1


@njit(inline="always")
def _first_shared(band_hashes, u, w):  # type: ignore[no-untyped-def]
    """The first band rows u and w share (band_hashes.shape[1] when none)."""
    B = band_hashes.shape[1]
    for c in range(B):
        if band_hashes[u, c] == band_hashes[w, c]:
            return c
    return B


@njit
def _run_pairs(band_hashes, bi, members, t0, t1, cap, keys, nk):  # type: ignore[no-untyped-def]
    """Pairs among members[t0:t1] whose first shared band is ``bi`` (so each pair is made once): all
    of them, or for a run of more than ``cap`` rows each row with the run's first ``cap`` rows (in
    priority order: the rows that will be kept and claim the others)."""
    N = band_hashes.shape[0]
    for x in range(t0, t1):
        for y in range(t0, min(x, t0 + cap)):
            u, w = members[y], members[x]
            if _first_shared(band_hashes, u, w) == bi:
                keys, nk = _push(keys, nk, u, w, N)
    return keys, nk


@njit
def bucket_pairs(band_hashes, bi, order, cap, keys, nk):  # type: ignore[no-untyped-def]
    """Pairs of rows whose first shared band is ``bi`` (``order`` sorts that column stably), appended
    to ``keys`` as ``i * N + j``. A bucket of at most ``cap`` rows gives all its pairs. A bigger one
    (templated text crowds one bucket) gives only the pairs that also share a second band; a run
    sharing two bands that is still bigger than ``cap`` pairs each row with the run's first ``cap``
    rows. Work stays linear in rows. Returns the keys, how many, and how many buckets were big."""
    N, B = band_hashes.shape
    col = np.empty(N, dtype=np.uint64)
    for t in range(N):  # the column in bucket order, read sequentially below
        col[t] = band_hashes[order[t], bi]
    big = 0
    s = 0
    while s < N:
        e = s + 1
        while e < N and col[e] == col[s]:
            e += 1
        g = e - s
        if g == 1:
            s = e
            continue
        if g <= cap:
            keys, nk = _run_pairs(band_hashes, bi, order, s, e, cap, keys, nk)
        else:
            big += 1
            members = order[s:e]
            sub_col = np.empty(g, dtype=np.uint64)
            for c in range(B):
                if c == bi:
                    continue
                for t in range(g):
                    sub_col[t] = band_hashes[members[t], c]
                rank = np.argsort(sub_col, kind="mergesort")  # stable: priority order within a run
                sub = members[rank]
                vals = sub_col[rank]
                t0 = 0
                while t0 < g:
                    t1 = t0 + 1
                    while t1 < g and vals[t1] == vals[t0]:
                        t1 += 1
                    if t1 - t0 > 1:
                        keys, nk = _run_pairs(band_hashes, bi, sub, t0, t1, cap, keys, nk)
                    t0 = t1
        s = e
    return keys, nk, big


# --- exact Jaccard and clusters --------------------------------------------------------------------


@njit(inline="always")
def _slot(h, mask):  # type: ignore[no-untyped-def]
    return np.int64((h ^ (h >> np.uint64(29))) & mask)


@njit
def _unique_into(g, m, out, table, used):  # type: ignore[no-untyped-def]
    """Distinct values of g[:m] into ``out`` (first-seen order) via an open-addressing table; returns
    how many. Hashing, not sorting: ~5x cheaper for sets of a few hundred."""
    size = 16
    while size < 2 * m:
        size *= 2
    mask = np.uint64(size - 1)
    used[:size] = False
    u = 0
    for j in range(m):
        h = g[j]
        t = _slot(h, mask)
        while used[t] and table[t] != h:
            t = (t + 1) & (size - 1)
        if not used[t]:
            used[t] = True
            table[t] = h
            out[u] = h
            u += 1
    return u


@njit
def gram_sets(buf, offsets, n, casefold):  # type: ignore[no-untyped-def]
    """Each text's distinct n-gram hashes in one pass: (flat, bound, count), text i's set being
    flat[bound[i] : bound[i] + count[i]] (``bound`` has len + 1 entries)."""
    N = offsets.shape[0] - 1
    longest = 0
    for i in range(N):
        longest = max(longest, offsets[i + 1] - offsets[i])
    wh = np.empty(longest // 2 + 2, dtype=np.uint64)
    g = np.empty(longest // 2 + 2, dtype=np.uint64)
    size = 16
    while size < 2 * (longest // 2 + 2):
        size *= 2
    table = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=np.bool_)
    flat = np.empty(max(16, (offsets[N] - offsets[0]) // 6), dtype=np.uint64)
    bound = np.zeros(N + 1, dtype=np.int64)
    count = np.zeros(N, dtype=np.int64)
    at = 0
    for i in range(N):
        nw = _words(buf, offsets[i], offsets[i + 1], casefold, wh)
        m = _grams(wh, nw, n, g)
        if at + m > flat.shape[0]:
            grown = np.empty(max(2 * flat.shape[0], at + m), dtype=np.uint64)
            grown[:at] = flat[:at]
            flat = grown
        bound[i] = at
        count[i] = _unique_into(g, m, flat[at : at + m], table, used)
        at += count[i]
    bound[N] = at
    return flat[:at], bound, count


@njit
def _intersect(flat, table, used, mask, size, y0, cy):  # type: ignore[no-untyped-def]
    inter = 0
    for j in range(y0, y0 + cy):
        h = flat[j]
        t = _slot(h, mask)
        while used[t]:
            if table[t] == h:
                inter += 1
                break
            t = (t + 1) & (size - 1)
    return inter


@njit
def _build(flat, x0, cx, table, used):  # type: ignore[no-untyped-def]
    size = 16
    while size < 2 * cx:
        size *= 2
    used[:size] = False
    mask = np.uint64(size - 1)
    for j in range(x0, x0 + cx):
        h = flat[j]
        t = _slot(h, mask)
        while used[t]:
            t = (t + 1) & (size - 1)
        used[t] = True
        table[t] = h
    return size, mask


@njit
def jaccard_pairs(flat, start, count, pi, pj):  # type: ignore[no-untyped-def]
    """Exact Jaccard similarity of the sets ``pi[k]`` and ``pj[k]`` (a table of the smaller, probed by the other)."""
    K = pi.shape[0]
    out = np.zeros(K, dtype=np.float64)
    most = 1
    for i in range(count.shape[0]):
        most = max(most, count[i])
    table = np.zeros(4 * most + 16, dtype=np.uint64)
    used = np.zeros(4 * most + 16, dtype=np.bool_)
    for k in range(K):
        x, y = pi[k], pj[k]
        if count[x] > count[y]:
            x, y = y, x
        size, mask = _build(flat, start[x], count[x], table, used)
        inter = _intersect(flat, table, used, mask, size, start[y], count[y])
        union = count[x] + count[y] - inter
        out[k] = inter / union if union > 0 else 0.0
    return out


@njit
def stars(n, ptr, nbr, flat, start, count, alive, threshold):  # type: ignore[no-untyped-def]
    """Star clusters with verification on demand. Nodes are numbered in priority order; ``ptr``/``nbr``
    hold each node's candidate neighbours after it. Walking nodes in order, an unclaimed live node is
    kept and claims each unclaimed live neighbour whose exact Jaccard with it is >= threshold. A pair
    whose later row is already claimed is never verified. Returns the keeper of each node (itself
    for keepers, -1 for dead nodes), the similarity to it, and how many pairs were verified."""
    keeper = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float64)
    most = 1
    for i in range(count.shape[0]):
        most = max(most, count[i])
    table = np.zeros(4 * most + 16, dtype=np.uint64)
    used = np.zeros(4 * most + 16, dtype=np.bool_)
    verified = 0
    for u in range(n):
        if keeper[u] != -1 or not alive[u]:
            continue
        keeper[u] = u
        sim[u] = 1.0
        built = False
        size = 16
        mask = np.uint64(15)
        for t in range(ptr[u], ptr[u + 1]):
            v = nbr[t]
            if keeper[v] != -1 or not alive[v]:
                continue
            small, large = min(count[u], count[v]), max(count[u], count[v])
            if small < threshold * large:  # J <= |small| / |large|: it cannot reach the threshold
                continue
            if not built:
                size, mask = _build(flat, start[u], count[u], table, used)
                built = True
            inter = _intersect(flat, table, used, mask, size, start[v], count[v])
            union = count[u] + count[v] - inter
            j = inter / union if union > 0 else 0.0
            verified += 1
            if j >= threshold:
                keeper[v] = u
                sim[v] = j
    return keeper, sim, verified
