"""The dedup kernels' numba source: compiled ahead of time into a cached extension (see ``compiled``), or jitted.

Only ``compiled`` imports this module (it imports numba, which costs a second of start-up). Every
kernel is serial: parallelism comes from worker processes, which suits ahead-of-time compilation
(no threading layer) and forking. ``EXPORTS`` lists each kernel the engine calls with its
ahead-of-time signature. The definitions the kernels implement are in ``minhash``'s docstring.
"""

from __future__ import annotations

import numpy as np
from numba import njit

M32 = np.uint64(0xFFFFFFFF)
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
POLY = np.uint64(0x9E3779B97F4A7C15)
POLY2 = np.uint64(0xC2B2AE3D27D4EB4F)
MERSENNE = np.uint64((1 << 61) - 1)

# byte classes (numba freezes global arrays as constants): 1 ASCII word byte, 2 ASCII space, 3 non-ASCII
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[np.r_[48:58, 65:91, 97:123]] = 1
_CLASS[np.r_[9:14, 28:33]] = 2
_CLASS[128:256] = 3
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32


@njit(inline="always")
def _fmix64(h):  # type: ignore[no-untyped-def]
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(inline="always")
def _fmix32(h):  # type: ignore[no-untyped-def]
    h = np.uint32(h ^ (h >> np.uint32(16)))
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h = np.uint32(h ^ (h >> np.uint32(13)))
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return np.uint32(h ^ (h >> np.uint32(16)))


@njit(inline="always")
def _char_kind(cp):  # type: ignore[no-untyped-def]
    """0: part of a word; 1: a separator (Unicode punctuation); 2: a word of its own (a script written
    without spaces, so each character is a word). Kept in step with ``minhash._char_kind_py``."""
    if 0x2000 <= cp <= 0x206F or 0x3000 <= cp <= 0x303F or 0xFE30 <= cp <= 0xFE4F:
        return 1  # general and CJK punctuation, CJK compatibility forms
    if 0xFF01 <= cp <= 0xFF0F or 0xFF1A <= cp <= 0xFF20 or 0xFF3B <= cp <= 0xFF40 or 0xFF5B <= cp <= 0xFF65:
        return 1  # fullwidth punctuation
    if 0x3040 <= cp <= 0x31FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF:
        return 2  # kana, bopomofo, CJK ideographs
    if 0xFF66 <= cp <= 0xFF9F or 0x20000 <= cp <= 0x3134F:
        return 2  # halfwidth katakana, CJK extensions B-G
    if 0x0E00 <= cp <= 0x0EFF or 0x1000 <= cp <= 0x109F or 0x1780 <= cp <= 0x17FF or 0x0F00 <= cp <= 0x0FFF:
        return 2  # Thai, Lao, Myanmar, Khmer, Tibetan
    return 0


@njit(inline="always")
def _decode(buf, p, end):  # type: ignore[no-untyped-def]
    """The code point at buf[p] and its byte length (a stray continuation byte is its own 'character')."""
    c = np.int64(buf[p])
    if c >= 0xF0 and p + 3 < end:
        return ((c & 0x07) << 18) | ((np.int64(buf[p + 1]) & 0x3F) << 12) | ((np.int64(buf[p + 2]) & 0x3F) << 6) | (np.int64(buf[p + 3]) & 0x3F), 4
    if c >= 0xE0 and p + 2 < end:
        return ((c & 0x0F) << 12) | ((np.int64(buf[p + 1]) & 0x3F) << 6) | (np.int64(buf[p + 2]) & 0x3F), 3
    if c >= 0xC0 and p + 1 < end:
        return ((c & 0x1F) << 6) | (np.int64(buf[p + 1]) & 0x3F), 2
    return c, 1


@njit
def _words(buf, start, end, casefold, wh):  # type: ignore[no-untyped-def]
    """Word hashes of buf[start:end] into ``wh``; returns how many."""
    nw = 0
    h = FNV_OFFSET
    inword = False
    p = start
    while p < end:
        c = buf[p]
        k = _CLASS[c]
        if k == 1:
            if casefold:
                c = _LOWER[c]
            if not inword:
                h = FNV_OFFSET
                inword = True
            h = (h ^ np.uint64(c)) * FNV_PRIME
            p += 1
            continue
        if k != 3:  # ASCII space or punctuation
            if inword:
                wh[nw] = _fmix64(h)
                nw += 1
                inword = False
            p += 1
            continue
        cp, ln = _decode(buf, p, end)
        kind = _char_kind(cp)
        if kind == 0:
            if not inword:
                h = FNV_OFFSET
                inword = True
            for q in range(p, p + ln):
                h = (h ^ np.uint64(buf[q])) * FNV_PRIME
        else:
            if inword:
                wh[nw] = _fmix64(h)
                nw += 1
                inword = False
            if kind == 2:
                h = FNV_OFFSET
                for q in range(p, p + ln):
                    h = (h ^ np.uint64(buf[q])) * FNV_PRIME
                wh[nw] = _fmix64(h)
                nw += 1
        p += ln
    if inword:
        wh[nw] = _fmix64(h)
        nw += 1
    return nw


@njit
def _pass(buf, start, end, casefold, wh):  # type: ignore[no-untyped-def]
    """``_exact`` and ``_words`` in one pass over the bytes (three independent hash chains).
    Returns the exact key's two hashes, the folded length and the number of words."""
    h1 = FNV_OFFSET
    h2 = np.uint64(0)
    n = 0
    pending = False
    nw = 0
    h = FNV_OFFSET
    inword = False
    p = start
    while p < end:
        c = buf[p]
        k = _CLASS[c]
        if k == 2:  # ASCII whitespace: folds to one space in the exact key, ends a word
            pending = n > 0
            if inword:
                wh[nw] = _fmix64(h)
                nw += 1
                inword = False
            p += 1
            continue
        if pending:
            h1 = (h1 ^ np.uint64(32)) * FNV_PRIME
            h2 = h2 * POLY2 + np.uint64(33)
            n += 1
            pending = False
        if k == 1 or k == 0:  # ASCII letter/digit, or punctuation
            if casefold:
                c = _LOWER[c]
            h1 = (h1 ^ np.uint64(c)) * FNV_PRIME
            h2 = h2 * POLY2 + np.uint64(c + 1)
            n += 1
            if k == 1:
                if not inword:
                    h = FNV_OFFSET
                    inword = True
                h = (h ^ np.uint64(c)) * FNV_PRIME
            elif inword:
                wh[nw] = _fmix64(h)
                nw += 1
                inword = False
            p += 1
            continue
        cp, ln = _decode(buf, p, end)
        for q in range(p, p + ln):
            b = np.uint64(buf[q])
            h1 = (h1 ^ b) * FNV_PRIME
            h2 = h2 * POLY2 + b + np.uint64(1)
        n += ln
        kind = _char_kind(cp)
        if kind == 0:
            if not inword:
                h = FNV_OFFSET
                inword = True
            for q in range(p, p + ln):
                h = (h ^ np.uint64(buf[q])) * FNV_PRIME
        else:
            if inword:
                wh[nw] = _fmix64(h)
                nw += 1
                inword = False
            if kind == 2:
                h = FNV_OFFSET
                for q in range(p, p + ln):
                    h = (h ^ np.uint64(buf[q])) * FNV_PRIME
                wh[nw] = _fmix64(h)
                nw += 1
        p += ln
    if inword:
        wh[nw] = _fmix64(h)
        nw += 1
    return _fmix64(h1 ^ np.uint64(n)), _fmix64(h2 + np.uint64(n)), n, nw


@njit
def _exact(buf, start, end, casefold):  # type: ignore[no-untyped-def]
    """Two 64-bit hashes of the text with whitespace folded (and ASCII lowercased); and its folded length."""
    h1 = FNV_OFFSET
    h2 = np.uint64(0)
    n = 0
    pending = False
    for p in range(start, end):
        c = buf[p]
        if _CLASS[c] == 2:
            pending = n > 0
            continue
        if pending:
            h1 = (h1 ^ np.uint64(32)) * FNV_PRIME
            h2 = h2 * POLY2 + np.uint64(33)
            n += 1
            pending = False
        if casefold:
            c = _LOWER[c]
        h1 = (h1 ^ np.uint64(c)) * FNV_PRIME
        h2 = h2 * POLY2 + np.uint64(c + 1)
        n += 1
    return _fmix64(h1 ^ np.uint64(n)), _fmix64(h2 + np.uint64(n)), n


@njit(inline="always")
def _gram(wh, s, k):  # type: ignore[no-untyped-def]
    acc = np.uint64(0)
    for t in range(s, s + k):
        acc = acc * POLY + wh[t]
    return _fmix64(acc)


@njit
def _grams(wh, nw, n, out):  # type: ignore[no-untyped-def]
    """64-bit n-gram hashes of the first ``nw`` word hashes into ``out``; returns how many."""
    if nw == 0:
        return 0
    if nw < n:
        out[0] = _gram(wh, 0, nw)
        return 1
    m = nw - n + 1
    top = np.uint64(1)  # POLY^(n-1): the weight of the word leaving the window
    for _ in range(n - 1):
        top *= POLY
    acc = np.uint64(0)
    for t in range(n):
        acc = acc * POLY + wh[t]
    out[0] = _fmix64(acc)
    for s in range(1, m):  # a rolling Horner sum: the same value as _gram(wh, s, n), mod 2^64
        acc = (acc - wh[s - 1] * top) * POLY + wh[s + n - 1]
        out[s] = _fmix64(acc)
    return m


@njit
def _signature(g, m, a, b, a32, b32, hs, legacy, sig):  # type: ignore[no-untyped-def]
    P = a.shape[0]
    if legacy:
        for k in range(P):
            sig[k] = M32
        for j in range(m):
            h = g[j] >> np.uint64(32)
            for k in range(P):
                x = a[k] * h + b[k]  # wraps mod 2^64, as datasketch's uint64 numpy arithmetic does
                x = (x & MERSENNE) + (x >> np.uint64(61))
                if x >= MERSENNE:
                    x -= MERSENNE
                x &= M32
                if x < sig[k]:
                    sig[k] = x
        return
    # affine32: each shingle's fmix32 first, then a lane-wise multiply-add-min over the permutations
    for j in range(m):
        hs[j] = _fmix32(np.uint32(g[j] >> np.uint64(32)))
    s32 = np.full(P, np.uint32(0xFFFFFFFF), dtype=np.uint32)
    for j in range(m):
        h = hs[j]
        for k in range(P):
            x = np.uint32(a32[k] * h + b32[k])  # numba widens uint32 products; wrap back to 32 bits
            s32[k] = min(s32[k], x)
    for k in range(P):
        sig[k] = np.uint64(s32[k])


@njit
def scan(buf, offsets, n, a, b, legacy, bands, rows, casefold, band_out, exact_out, lens_out, sig_out):  # type: ignore[no-untyped-def]
    """One pass per text: exact key, folded length and word count, band hashes (and the full
    signature when ``sig_out`` has a row per text)."""
    N = offsets.shape[0] - 1
    P = a.shape[0]
    want_sig = sig_out.shape[0] == N
    longest = 0
    for i in range(N):
        longest = max(longest, offsets[i + 1] - offsets[i])
    wh = np.empty(longest // 2 + 2, dtype=np.uint64)
    g = np.empty(longest // 2 + 2, dtype=np.uint64)
    hs = np.empty(longest // 2 + 2, dtype=np.uint32)
    a32 = a.astype(np.uint32)
    b32 = b.astype(np.uint32)
    sig = np.empty(P, dtype=np.uint64)
    for i in range(N):
        h1, h2, ln, nw = _pass(buf, offsets[i], offsets[i + 1], casefold, wh)
        exact_out[i, 0] = h1
        exact_out[i, 1] = h2
        lens_out[i, 0] = ln
        lens_out[i, 1] = nw
        m = _grams(wh, nw, n, g)
        _signature(g, m, a, b, a32, b32, hs, legacy, sig)
        if want_sig:
            for k in range(P):
                sig_out[i, k] = sig[k]
        for bi in range(bands):
            acc = np.uint64(0)
            for k in range(bi * rows, (bi + 1) * rows):
                acc = acc * POLY + sig[k]
            band_out[i, bi] = _fmix64(acc)


@njit
def exact_only(buf, offsets, casefold, keys, lens):  # type: ignore[no-untyped-def]
    """The exact key and folded length of each text, nothing else."""
    for i in range(offsets.shape[0] - 1):
        h1, h2, ln = _exact(buf, offsets[i], offsets[i + 1], casefold)
        keys[i, 0] = h1
        keys[i, 1] = h2
        lens[i] = ln


# --- candidates ------------------------------------------------------------------------------------


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
    big = 0
    s = 0
    while s < N:
        v = band_hashes[order[s], bi]
        e = s + 1
        while e < N and band_hashes[order[e], bi] == v:
            e += 1
        g = e - s
        if g <= cap:
            keys, nk = _run_pairs(band_hashes, bi, order, s, e, cap, keys, nk)
        else:
            big += 1
            members = order[s:e]
            col = np.empty(g, dtype=np.uint64)
            for c in range(B):
                if c == bi:
                    continue
                for t in range(g):
                    col[t] = band_hashes[members[t], c]
                sub = members[np.argsort(col, kind="mergesort")]  # stable: priority order within a run
                t0 = 0
                while t0 < g:
                    t1 = t0 + 1
                    while t1 < g and band_hashes[sub[t1], c] == band_hashes[sub[t0], c]:
                        t1 += 1
                    if t1 - t0 > 1:
                        keys, nk = _run_pairs(band_hashes, bi, sub, t0, t1, cap, keys, nk)
                    t0 = t1
        s = e
    return keys, nk, big


# --- exact Jaccard ---------------------------------------------------------------------------------


@njit
def word_counts(buf, offsets, casefold):  # type: ignore[no-untyped-def]
    N = offsets.shape[0] - 1
    out = np.empty(N, dtype=np.int64)
    longest = 0
    for i in range(N):
        longest = max(longest, offsets[i + 1] - offsets[i])
    wh = np.empty(longest // 2 + 2, dtype=np.uint64)
    for i in range(N):
        out[i] = _words(buf, offsets[i], offsets[i + 1], casefold, wh)
    return out


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


# --- n-gram overlap with --against items ------------------------------------------------------------


@njit
def ngram_hits(buf, offsets, ks, casefold, table, table_item, max_items):  # type: ignore[no-untyped-def]
    """For each text, the eval item sharing the most distinct k-grams with it (k in ``ks``), and how many.

    ``table`` is sorted; ``table_item[t]`` is the item that holds ``table[t]``."""
    N = offsets.shape[0] - 1
    best = np.full(N, -1, dtype=np.int64)
    best_count = np.zeros(N, dtype=np.int64)
    if table.shape[0] == 0:
        return best, best_count
    longest = 0
    for i in range(N):
        longest = max(longest, offsets[i + 1] - offsets[i])
    wh = np.empty(longest // 2 + 2, dtype=np.uint64)
    for i in range(N):
        s, e = offsets[i], offsets[i + 1]
        nw = _words(buf, s, e, casefold, wh)
        found = np.empty(0, dtype=np.uint64)
        for k in ks:
            if nw < k:
                continue
            m = nw - k + 1
            hit = np.empty(m, dtype=np.uint64)
            nh = 0
            for st in range(m):
                h = _gram(wh, st, k)
                t = np.searchsorted(table, h)
                if t < table.shape[0] and table[t] == h:
                    hit[nh] = h
                    nh += 1
            if nh:
                found = np.concatenate((found, hit[:nh]))
        if found.shape[0] == 0:
            continue
        found = np.unique(found)
        items = np.empty(found.shape[0] * max_items, dtype=np.int64)
        ni = 0
        for h in found:
            t = np.searchsorted(table, h)
            while t < table.shape[0] and table[t] == h:
                items[ni] = table_item[t]
                ni += 1
                t += 1
        items = np.sort(items[:ni])
        run = 0
        for t in range(ni):
            run = run + 1 if t > 0 and items[t] == items[t - 1] else 1
            if run > best_count[i]:
                best_count[i] = run
                best[i] = items[t]
    return best, best_count


_U8, _I64, _U64 = "uint8[::1]", "int64[::1]", "uint64[::1]"
EXPORTS = {
    "scan": (scan, f"void({_U8}, {_I64}, int64, {_U64}, {_U64}, boolean, int64, int64, boolean, "
                   "uint64[:, ::1], uint64[:, ::1], int64[:, ::1], uint64[:, ::1])"),
    "exact_only": (exact_only, f"void({_U8}, {_I64}, boolean, uint64[:, ::1], {_I64})"),
    "bucket_pairs": (bucket_pairs, f"Tuple(({_I64}, int64, int64))(uint64[:, ::1], int64, {_I64}, int64, {_I64}, int64)"),
    "word_counts": (word_counts, f"{_I64}({_U8}, {_I64}, boolean)"),
    "gram_sets": (gram_sets, f"Tuple(({_U64}, {_I64}, {_I64}))({_U8}, {_I64}, int64, boolean)"),
    "jaccard_pairs": (jaccard_pairs, f"float64[::1]({_U64}, {_I64}, {_I64}, {_I64}, {_I64})"),
    "stars": (stars, f"Tuple((int64[::1], float64[::1], int64))(int64, {_I64}, {_I64}, {_U64}, {_I64}, {_I64}, "
                     "boolean[::1], float64)"),
    "ngram_hits": (ngram_hits, f"UniTuple({_I64}, 2)({_U8}, {_I64}, {_I64}, boolean, {_U64}, {_I64}, int64)"),
}  # fmt: skip
