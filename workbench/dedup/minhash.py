"""The fast near-duplicate engine: tokenise, shingle, MinHash, band and verify in numba over one byte buffer.

Texts travel as one concatenated UTF-8 ``uint8`` buffer plus offsets, so no Python object is made per
word or per shingle. The definitions, which ``shingles_py`` and ``shingle_hash32`` restate in plain
Python so tests can hold the engine to ``datasketch.MinHash``:

- a *word* is a maximal run of ASCII letters/digits or non-ASCII bytes, ASCII-lowercased (non-ASCII
  texts are NFC-normalised and casefolded in Python first, see ``normalise``);
- a word's hash is ``fmix64(fnv1a64(word))``; an n-gram's hash is ``fmix64`` of the Horner sum of
  its word hashes with multiplier ``POLY`` (mod 2^64); a text with fewer than n words has one
  shingle, all its words;
- the 32-bit shingle hash given to MinHash is the n-gram hash's top 32 bits;
- MinHash permutations are datasketch's: ``np.random.RandomState(seed)`` parameters, scheme
  ``affine32`` (datasketch 2's default: ``a * fmix32(h) + b mod 2^32``) or ``legacy``
  (``(a * h + b) mod 2^64 mod (2^61 - 1) & (2^32 - 1)``, datasketch < 2);
- the exact key is two 64-bit hashes of the text with whitespace runs folded to one space.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
M32 = np.uint64(0xFFFFFFFF)
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
POLY = np.uint64(0x9E3779B97F4A7C15)
POLY2 = np.uint64(0xC2B2AE3D27D4EB4F)
MERSENNE = np.uint64((1 << 61) - 1)
SCHEMES = ("affine32", "legacy")


def permutations(num_perm: int, seed: int, scheme: str = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters ``(a, b)`` as uint64 arrays, drawn exactly as it draws them."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        p = np.uint64((1 << 61) - 1)
        ab = np.array(
            [(gen.randint(1, p, dtype=np.uint64), gen.randint(0, p, dtype=np.uint64)) for _ in range(num_perm)],
            dtype=np.uint64,
        ).T
        return np.ascontiguousarray(ab[0]), np.ascontiguousarray(ab[1])
    if scheme != "affine32":
        raise ValueError(f"unknown MinHash scheme {scheme!r}; use one of {SCHEMES}")
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint64), b.astype(np.uint64)


# --- text to bytes ------------------------------------------------------------------------------


def normalise(text: str, *, nfc: bool = True, casefold: bool = True) -> str:
    """What Python does before the bytes reach numba: only non-ASCII texts need NFC, casefold and
    Unicode whitespace folding; ASCII lowercasing and whitespace folding happen in the engine."""
    if text.isascii():
        return text
    if nfc:
        text = unicodedata.normalize("NFC", text)
    if casefold:
        text = text.casefold()
    return " ".join(text.split())


def pack(texts: Sequence[str], *, nfc: bool = True, casefold: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 ``uint8`` buffer and ``int64`` offsets (``len(texts) + 1``)."""
    norm = [t if t.isascii() else normalise(t, nfc=nfc, casefold=casefold) for t in texts]
    lens = np.fromiter(map(len, norm), dtype=np.int64, count=len(norm))
    data = "".join(norm).encode("utf-8", "surrogatepass")  # one encode, not one per text
    if len(data) != int(lens.sum()):  # some text is not ASCII: its byte length differs from its length
        for k, t in enumerate(norm):
            if not t.isascii():
                lens[k] = len(t.encode("utf-8", "surrogatepass"))
    offsets = np.zeros(len(norm) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return np.frombuffer(data, dtype=np.uint8), offsets


# --- the same definitions in plain Python (tests hold the engine to datasketch with these) -------

_WORD_BYTES = frozenset(list(range(48, 58)) + list(range(65, 91)) + list(range(97, 123)) + list(range(128, 256)))


def _fmix64_py(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & 0xFFFFFFFFFFFFFFFF
    return h ^ (h >> 33)


def words_py(text: str, *, casefold: bool = True) -> list[bytes]:
    """The engine's words for ``text``, as bytes."""
    data = normalise(text, casefold=casefold).encode("utf-8", "surrogatepass")
    if casefold:
        data = data.lower()  # bytes.lower() touches ASCII only, like the engine
    out: list[bytes] = []
    cur = bytearray()
    for c in data:
        if c in _WORD_BYTES:
            cur.append(c)
        elif cur:
            out.append(bytes(cur))
            cur = bytearray()
    if cur:
        out.append(bytes(cur))
    return out


def shingles_py(text: str, n: int, *, casefold: bool = True) -> list[bytes]:
    """The engine's shingles for ``text``: n consecutive words joined by one space."""
    w = words_py(text, casefold=casefold)
    if not w:
        return []
    if len(w) < n:
        return [b" ".join(w)]
    return [b" ".join(w[i : i + n]) for i in range(len(w) - n + 1)]


def shingle_hash64(shingle: bytes) -> int:
    """The engine's 64-bit hash of a shingle given as space-joined words."""
    s = 0
    for word in shingle.split(b" "):
        h = 0xCBF29CE484222325
        for c in word:
            h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        s = (s * 0x9E3779B97F4A7C15 + _fmix64_py(h)) & 0xFFFFFFFFFFFFFFFF
    return _fmix64_py(s)


def shingle_hash32(shingle: bytes) -> int:
    """The 32-bit shingle hash the engine feeds MinHash: pass it to ``datasketch.MinHash(hashfunc=...)``."""
    return shingle_hash64(shingle) >> 32


# --- numba kernels ------------------------------------------------------------------------------


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


# byte classes as lookup tables (numba freezes global arrays as constants): 1 word, 2 space
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[np.r_[48:58, 65:91, 97:123, 128:256]] = 1
_CLASS[np.r_[9:14, 28:33]] = 2
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32


@njit(inline="always")
def _is_word(c):  # type: ignore[no-untyped-def]
    return _CLASS[c] == 1


@njit(inline="always")
def _is_space(c):  # type: ignore[no-untyped-def]
    return _CLASS[c] == 2


@njit(cache=True)
def _words(buf, start, end, casefold, wh):  # type: ignore[no-untyped-def]
    """Word hashes of buf[start:end] into ``wh``; returns how many."""
    nw = 0
    h = FNV_OFFSET
    inword = False
    for p in range(start, end):
        c = buf[p]
        if _is_word(c):
            if casefold:
                c = _LOWER[c]
            if not inword:
                h = FNV_OFFSET
                inword = True
            h = (h ^ np.uint64(c)) * FNV_PRIME
        elif inword:
            wh[nw] = _fmix64(h)
            nw += 1
            inword = False
    if inword:
        wh[nw] = _fmix64(h)
        nw += 1
    return nw


@njit(cache=True)
def _exact(buf, start, end, casefold):  # type: ignore[no-untyped-def]
    """Two 64-bit hashes of the text with whitespace folded (and ASCII lowercased); and its folded length."""
    h1 = FNV_OFFSET
    h2 = np.uint64(0)
    n = 0
    pending = False
    for p in range(start, end):
        c = buf[p]
        if _is_space(c):
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


@njit(cache=True)
def _grams(wh, nw, n, out):  # type: ignore[no-untyped-def]
    """64-bit n-gram hashes of the first ``nw`` word hashes into ``out``; returns how many."""
    if nw == 0:
        return 0
    if nw < n:
        out[0] = _gram(wh, 0, nw)
        return 1
    m = nw - n + 1
    for s in range(m):
        out[s] = _gram(wh, s, n)
    return m


@njit(cache=True)
def _signature(g, m, a, b, legacy, sig):  # type: ignore[no-untyped-def]
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
    a32 = a.astype(np.uint32)
    b32 = b.astype(np.uint32)
    s32 = np.full(P, np.uint32(0xFFFFFFFF), dtype=np.uint32)
    for j in range(m):
        h = _fmix32(np.uint32(g[j] >> np.uint64(32)))
        for k in range(P):
            x = np.uint32(a32[k] * h + b32[k])
            if x < s32[k]:
                s32[k] = x
    for k in range(P):
        sig[k] = np.uint64(s32[k])


@njit(parallel=True, cache=True)
def scan(buf, offsets, n, a, b, legacy, bands, rows, casefold, band_out, exact_out, lens_out, sig_out):  # type: ignore[no-untyped-def]
    """One pass per text: exact key, folded length and word count, band hashes (and the full
    signature when ``sig_out`` has rows)."""
    N = offsets.shape[0] - 1
    P = a.shape[0]
    want_sig = sig_out.shape[0] == N
    for i in prange(N):
        s, e = offsets[i], offsets[i + 1]
        h1, h2, ln = _exact(buf, s, e, casefold)
        exact_out[i, 0] = h1
        exact_out[i, 1] = h2
        lens_out[i, 0] = ln
        wh = np.empty((e - s + 1) // 2 + 1, dtype=np.uint64)
        nw = _words(buf, s, e, casefold, wh)
        lens_out[i, 1] = nw
        g = np.empty(max(nw - n + 1, 1), dtype=np.uint64)
        m = _grams(wh, nw, n, g)
        sig = np.empty(P, dtype=np.uint64)
        _signature(g, m, a, b, legacy, sig)
        if want_sig:
            for k in range(P):
                sig_out[i, k] = sig[k]
        for bi in range(bands):
            acc = np.uint64(0)
            for k in range(bi * rows, (bi + 1) * rows):
                acc = acc * POLY + sig[k]
            band_out[i, bi] = _fmix64(acc)


@njit(cache=True)
def _bucket_pairs(col, order, cap, keys, nk, N):  # type: ignore[no-untyped-def]
    s = 0
    while s < N:
        e = s + 1
        v = col[order[s]]
        while e < N and col[order[e]] == v:
            e += 1
        g = e - s
        if g > 1:
            top = min(g, cap)
            need = nk + top * g
            if need > keys.shape[0]:
                grown = np.empty(max(need, 2 * keys.shape[0]), dtype=np.int64)
                grown[:nk] = keys[:nk]
                keys = grown
            for x in range(top):
                u = order[s + x]
                for y in range(x + 1, g):
                    w = order[s + y]
                    keys[nk] = min(u, w) * N + max(u, w)
                    nk += 1
        s = e
    return keys, nk


def candidates(band_hashes: np.ndarray, cap: int) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of rows that share a band, as sorted unique ``i * N + j`` keys.

    Rows are expected in priority order. In a bucket of more than ``cap`` rows only pairs that
    include one of its first ``cap`` rows are made, so a huge bucket stays linear, not quadratic."""
    N, B = band_hashes.shape
    keys = np.empty(1024, dtype=np.int64)
    nk = 0
    for bi in range(B):
        col = np.ascontiguousarray(band_hashes[:, bi])
        order = np.argsort(col, kind="stable")  # stable: a bucket lists its rows in priority order
        keys, nk = _bucket_pairs(col, order, cap, keys, nk, N)
    return np.unique(keys[:nk])


@njit(parallel=True, cache=True)
def _word_counts(buf, offsets, casefold):  # type: ignore[no-untyped-def]
    N = offsets.shape[0] - 1
    out = np.empty(N, dtype=np.int64)
    for i in prange(N):
        s, e = offsets[i], offsets[i + 1]
        n = 0
        inword = False
        for p in range(s, e):
            w = _is_word(buf[p])
            if w and not inword:
                n += 1
            inword = w
        out[i] = n
    return out


@njit(inline="always")
def _slot(h, mask):  # type: ignore[no-untyped-def]
    return np.int64((h ^ (h >> np.uint64(29))) & mask)


@njit(cache=True)
def _unique_into(g, m, out):  # type: ignore[no-untyped-def]
    """Distinct values of g[:m] into ``out`` (first-seen order) via an open-addressing table; returns
    how many. Hashing, not sorting: ~5x cheaper for sets of a few hundred."""
    size = 16
    while size < 2 * m:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=np.bool_)
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


@njit(parallel=True, cache=True)
def _fill_gram_sets(buf, offsets, n, casefold, bound, flat, count):  # type: ignore[no-untyped-def]
    N = offsets.shape[0] - 1
    for i in prange(N):
        s, e = offsets[i], offsets[i + 1]
        wh = np.empty((e - s + 1) // 2 + 1, dtype=np.uint64)
        nw = _words(buf, s, e, casefold, wh)
        g = np.empty(max(nw - n + 1, 1), dtype=np.uint64)
        m = _grams(wh, nw, n, g)
        count[i] = _unique_into(g, m, flat[bound[i] : bound[i + 1]])


def gram_sets(buf: np.ndarray, offsets: np.ndarray, n: int, casefold: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct 64-bit n-gram hashes of each text (unordered): one flat array, start pointers, counts."""
    nw = _word_counts(buf, offsets, casefold)
    bound = np.zeros(len(nw) + 1, dtype=np.int64)
    np.cumsum(np.maximum(nw - n + 1, 1), out=bound[1:])
    flat = np.empty(bound[-1], dtype=np.uint64)
    count = np.zeros(len(nw), dtype=np.int64)
    _fill_gram_sets(buf, offsets, n, casefold, bound, flat, count)
    return flat, bound, count


@njit(parallel=True, cache=True)
def jaccard_pairs(flat, start, count, pi, pj):  # type: ignore[no-untyped-def]
    """Exact Jaccard similarity of the sets ``pi[k]`` and ``pj[k]`` (a table of the smaller, probed by the other)."""
    K = pi.shape[0]
    out = np.zeros(K, dtype=np.float64)
    for k in prange(K):
        x, y = pi[k], pj[k]
        if count[x] > count[y]:
            x, y = y, x
        cx, cy = count[x], count[y]
        size = 16
        while size < 2 * cx:
            size *= 2
        mask = np.uint64(size - 1)
        table = np.zeros(size, dtype=np.uint64)
        used = np.zeros(size, dtype=np.bool_)
        for j in range(start[x], start[x] + cx):
            h = flat[j]
            t = _slot(h, mask)
            while used[t]:
                t = (t + 1) & (size - 1)
            used[t] = True
            table[t] = h
        inter = 0
        for j in range(start[y], start[y] + cy):
            h = flat[j]
            t = _slot(h, mask)
            while used[t]:
                if table[t] == h:
                    inter += 1
                    break
                t = (t + 1) & (size - 1)
        union = cx + cy - inter
        out[k] = inter / union if union > 0 else 0.0
    return out


@njit(cache=True)
def greedy_stars(n, rank_order, ei, ej):  # type: ignore[no-untyped-def]
    """Assign each node to a keeper: walk nodes by priority; an unassigned node becomes a keeper and
    takes its unassigned neighbours. Returns ``keeper`` (itself for keepers) and the edge index
    that assigned each member (-1 for keepers)."""
    deg = np.zeros(n + 1, dtype=np.int64)
    for k in range(ei.shape[0]):
        deg[ei[k] + 1] += 1
        deg[ej[k] + 1] += 1
    for i in range(n):
        deg[i + 1] += deg[i]
    fill = deg[:-1].copy()
    nbr = np.empty(deg[n], dtype=np.int64)
    via = np.empty(deg[n], dtype=np.int64)
    for k in range(ei.shape[0]):
        nbr[fill[ei[k]]] = ej[k]
        via[fill[ei[k]]] = k
        fill[ei[k]] += 1
        nbr[fill[ej[k]]] = ei[k]
        via[fill[ej[k]]] = k
        fill[ej[k]] += 1
    keeper = np.full(n, -1, dtype=np.int64)
    edge = np.full(n, -1, dtype=np.int64)
    for u in rank_order:
        if keeper[u] != -1:
            continue
        keeper[u] = u
        for t in range(deg[u], deg[u + 1]):
            v = nbr[t]
            if keeper[v] == -1:
                keeper[v] = u
                edge[v] = via[t]
    return keeper, edge


@njit(parallel=True, cache=True)
def ngram_hits(buf, offsets, ks, casefold, table, table_item, max_items):  # type: ignore[no-untyped-def]
    """For each text, the eval item sharing the most distinct k-grams with it (k in ``ks``), and how many.

    ``table`` is sorted; ``table_item[t]`` is the item that holds ``table[t]``."""
    N = offsets.shape[0] - 1
    best = np.full(N, -1, dtype=np.int64)
    best_count = np.zeros(N, dtype=np.int64)
    if table.shape[0] == 0:
        return best, best_count
    for i in prange(N):
        s, e = offsets[i], offsets[i + 1]
        wh = np.empty((e - s + 1) // 2 + 1, dtype=np.uint64)
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


# --- Python entry points --------------------------------------------------------------------------


@dataclass(slots=True)
class Scan:
    """What one pass over the texts gives: band hashes, exact keys, lengths, and optionally signatures."""

    bands: np.ndarray  # (N, bands) uint64
    exact: np.ndarray  # (N, 2) uint64: the exact key
    folded_len: np.ndarray  # (N,) int64: bytes of the normalised text (0: nothing to compare)
    words: np.ndarray  # (N,) int64: words (0: no shingles, never a near duplicate)
    signatures: np.ndarray | None  # (N, num_perm) uint64 when asked for


def scan_texts(
    texts: Sequence[str],
    *,
    ngram: int = 5,
    num_perm: int = 128,
    seed: int = 1,
    bands: int = 16,
    rows: int = 8,
    scheme: str = "affine32",
    casefold: bool = True,
    nfc: bool = True,
    signatures: bool = False,
    chunk: int = 65536,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Scan:
    """Exact keys and LSH band hashes (and MinHash signatures if asked) of ``texts``, chunk by chunk."""
    if bands * rows > num_perm:
        raise ValueError(f"bands x rows ({bands}x{rows}) needs at least {bands * rows} permutations, not {num_perm}")
    a, b = permutations(num_perm, seed, scheme)
    N = len(texts)
    band_out = np.empty((N, bands), dtype=np.uint64)
    exact_out = np.empty((N, 2), dtype=np.uint64)
    lens = np.empty((N, 2), dtype=np.int64)
    sig = np.empty((N if signatures else 0, num_perm), dtype=np.uint64)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        buf, off = pack(texts[lo:hi], nfc=nfc, casefold=casefold)
        scan(
            buf, off, ngram, a, b, scheme == "legacy", bands, rows, casefold,
            band_out[lo:hi], exact_out[lo:hi], lens[lo:hi], sig[lo:hi] if signatures else sig,
        )  # fmt: skip
        if on_progress:
            on_progress(hi, N)
    return Scan(band_out, exact_out, lens[:, 0].copy(), lens[:, 1].copy(), sig if signatures else None)


def candidate_pairs(band_hashes: np.ndarray, cap: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)``, ``i < j``, sharing at least one band (see ``candidates``)."""
    n = band_hashes.shape[0]
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = candidates(band_hashes, cap)
    return keys // n, keys % n


def exact_jaccard(
    texts: Sequence[str], pi: np.ndarray, pj: np.ndarray, *, ngram: int = 5, casefold: bool = True, nfc: bool = True
) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of ``texts[pi[k]]`` and ``texts[pj[k]]``."""
    if len(pi) == 0:
        return np.zeros(0, np.float64)
    docs, inv = np.unique(np.concatenate([pi, pj]), return_inverse=True)
    buf, off = pack([texts[int(d)] for d in docs], nfc=nfc, casefold=casefold)
    flat, start, count = gram_sets(buf, off, ngram, casefold)
    k = len(pi)
    return jaccard_pairs(flat, start, count, inv[:k].astype(np.int64), inv[k:].astype(np.int64))


@njit(parallel=True, cache=True)
def _exact_only(buf, offsets, casefold, keys, lens):  # type: ignore[no-untyped-def]
    for i in prange(offsets.shape[0] - 1):
        h1, h2, ln = _exact(buf, offsets[i], offsets[i + 1], casefold)
        keys[i, 0] = h1
        keys[i, 1] = h2
        lens[i] = ln


def exact_keys(texts: Sequence[str], *, casefold: bool = True, nfc: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The exact key (two uint64 per text) and folded length of each text, nothing else."""
    keys = np.empty((len(texts), 2), dtype=np.uint64)
    lens = np.empty(len(texts), dtype=np.int64)
    if len(texts):
        buf, off = pack(texts, nfc=nfc, casefold=casefold)
        _exact_only(buf, off, casefold, keys, lens)
    return keys, lens
