"""The dedup kernels' numba source for text: one byte pass, words, shingles, MinHash bands, gram sets, n-gram hits.

Only ``compiled`` imports this module and ``pairs`` (they import numba, which costs a second of
start-up); it compiles them ahead of time into a cached extension, or jits them. Every kernel is
serial: parallelism comes from worker processes, which suits ahead-of-time compilation (no
threading layer) and forking. The definitions they implement are in ``minhash``'s docstring.
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
                sig[k] = min(sig[k], x)
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


# --- word counts -----------------------------------------------------------------------------------


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
