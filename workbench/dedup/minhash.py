"""The near-duplicate engine's Python side: texts to bytes, datasketch's permutations, the plain-Python
definitions tests hold the compiled kernels to, and the entry points over those kernels.

Texts travel as one concatenated UTF-8 ``uint8`` buffer plus offsets, so no Python object is made per
word or per shingle. The definitions (``kernels`` implements them, ``words_py`` and ``shingle_hash32``
restate them in plain Python so tests can hold the engine to ``datasketch.MinHash``):

- a *word* is a maximal run of ASCII letters/digits and non-ASCII characters, ASCII-lowercased
  (non-ASCII texts are NFC-normalised and casefolded in Python first, see ``normalise``); Unicode
  punctuation (general, CJK and fullwidth) separates words, and each character of a script written
  without spaces (CJK ideographs, kana, Thai, Lao, Khmer, Myanmar, Tibetan) is a word of its own, so
  a Chinese row is shingled by characters while spaced text is shingled exactly as before;
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

from workbench.dedup.compiled import kernels

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
    """What Python does before the bytes reach the kernels: only non-ASCII texts need NFC, casefold and
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

def _char_kind_py(cp: int) -> int:
    """``kernels._char_kind`` in plain Python: 0 part of a word, 1 separator, 2 a word of its own."""
    if 0x2000 <= cp <= 0x206F or 0x3000 <= cp <= 0x303F or 0xFE30 <= cp <= 0xFE4F:
        return 1
    if 0xFF01 <= cp <= 0xFF0F or 0xFF1A <= cp <= 0xFF20 or 0xFF3B <= cp <= 0xFF40 or 0xFF5B <= cp <= 0xFF65:
        return 1
    if 0x3040 <= cp <= 0x31FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF:
        return 2
    if 0xFF66 <= cp <= 0xFF9F or 0x20000 <= cp <= 0x3134F:
        return 2
    if 0x0E00 <= cp <= 0x0EFF or 0x1000 <= cp <= 0x109F or 0x1780 <= cp <= 0x17FF or 0x0F00 <= cp <= 0x0FFF:
        return 2
    return 0


def _fmix64_py(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & 0xFFFFFFFFFFFFFFFF
    return h ^ (h >> 33)


def words_py(text: str, *, casefold: bool = True) -> list[bytes]:
    """The engine's words for ``text``, as UTF-8 bytes."""
    text = normalise(text, casefold=casefold)
    out: list[bytes] = []
    cur: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp < 128:
            if ch.isascii() and ch.isalnum():
                cur.append(ch.lower() if casefold else ch)
                continue
            kind = 1
        else:
            kind = _char_kind_py(cp)
            if kind == 0:
                cur.append(ch)
                continue
        if cur:
            out.append("".join(cur).encode("utf-8", "surrogatepass"))
            cur = []
        if kind == 2:
            out.append(ch.encode("utf-8", "surrogatepass"))
    if cur:
        out.append("".join(cur).encode("utf-8", "surrogatepass"))
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


# --- Python entry points --------------------------------------------------------------------------


@dataclass(slots=True)
class Scan:
    """What one pass over the texts gives: band hashes, exact keys, lengths, and optionally signatures."""

    bands: np.ndarray  # (N, bands) uint64
    exact: np.ndarray  # (N, 2) uint64: the exact key
    folded_len: np.ndarray  # (N,) int64: bytes of the normalised text (0: nothing to compare)
    words: np.ndarray  # (N,) int64: words (0: no shingles, never a near duplicate)
    signatures: np.ndarray | None  # (N, num_perm) uint64 when asked for


def scan_packed(
    buf: np.ndarray, off: np.ndarray, perms: tuple[np.ndarray, np.ndarray], *, ngram: int = 5, bands: int = 16,
    rows: int = 8, legacy: bool = False, casefold: bool = True, signatures: bool = False,
) -> Scan:  # fmt: skip
    """``scan_texts`` over texts already packed (``pack``) with permutations already drawn."""
    N = len(off) - 1
    a, b = perms
    band_out = np.empty((N, bands), dtype=np.uint64)
    exact_out = np.empty((N, 2), dtype=np.uint64)
    lens = np.empty((N, 2), dtype=np.int64)
    sig = np.empty((N if signatures else 0, len(a)), dtype=np.uint64)
    kernels().scan(buf, off, ngram, a, b, legacy, bands, rows, casefold, band_out, exact_out, lens, sig)
    return Scan(band_out, exact_out, lens[:, 0].copy(), lens[:, 1].copy(), sig if signatures else None)


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
    perms = permutations(num_perm, seed, scheme)
    parts = []
    N = len(texts)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        buf, off = pack(texts[lo:hi], nfc=nfc, casefold=casefold)
        parts.append(scan_packed(buf, off, perms, ngram=ngram, bands=bands, rows=rows, legacy=scheme == "legacy",
                                 casefold=casefold, signatures=signatures))  # fmt: skip
        if on_progress:
            on_progress(hi, N)
    if not parts:
        parts.append(scan_packed(*pack([]), perms, bands=bands, signatures=signatures))
    return concat_scans(parts)


def concat_scans(parts: Sequence[Scan]) -> Scan:
    """One Scan of several, in order."""
    if len(parts) == 1:
        return parts[0]
    sigs = [p.signatures for p in parts]
    return Scan(
        np.concatenate([p.bands for p in parts]),
        np.concatenate([p.exact for p in parts]),
        np.concatenate([p.folded_len for p in parts]),
        np.concatenate([p.words for p in parts]),
        None if any(s is None for s in sigs) else np.concatenate(sigs),  # type: ignore[arg-type]
    )


def candidate_pairs(band_hashes: np.ndarray, cap: int = 64) -> tuple[np.ndarray, np.ndarray, int]:
    """Row pairs ``(i, j)``, ``i < j``, sharing at least one band, and how many buckets held more than
    ``cap`` rows (there only pairs that share a second band are made; see ``kernels.bucket_pairs``).
    Rows are expected in priority order."""
    n, nb = band_hashes.shape
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    bh = np.ascontiguousarray(band_hashes)
    keys = np.empty(max(1024, 2 * n), dtype=np.int64)
    nk = big = 0
    for bi in range(nb):
        order = np.argsort(bh[:, bi], kind="stable")  # stable: a bucket lists its rows in priority order
        keys, nk, b = kernels().bucket_pairs(bh, bi, order, cap, keys, nk)
        big += b
    keys = np.sort(keys[:nk])  # sort-based unique: much faster than np.unique's hashing for millions
    if len(keys):
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return keys // n, keys % n, big


def gram_sets(buf: np.ndarray, offsets: np.ndarray, n: int, casefold: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct 64-bit n-gram hashes of each text (unordered): one flat array, start bounds (len + 1), counts."""
    return kernels().gram_sets(buf, offsets, n, casefold)  # type: ignore[no-any-return]


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
    return kernels().jaccard_pairs(flat, start, count, inv[:k].astype(np.int64), inv[k:].astype(np.int64))


def exact_keys(texts: Sequence[str], *, casefold: bool = True, nfc: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The exact key (two uint64 per text) and folded length of each text, nothing else."""
    keys = np.empty((len(texts), 2), dtype=np.uint64)
    lens = np.empty(len(texts), dtype=np.int64)
    if len(texts):
        buf, off = pack(texts, nfc=nfc, casefold=casefold)
        kernels().exact_only(buf, off, casefold, keys, lens)
    return keys, lens


def stars(
    n: int, pi: np.ndarray, pj: np.ndarray, gram: tuple[np.ndarray, np.ndarray, np.ndarray], at: np.ndarray,
    alive: np.ndarray, threshold: float,
) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Star clusters over nodes ``0..n-1`` (priority order) from candidate pairs ``pi < pj`` sorted by
    ``pi`` (as ``candidate_pairs`` gives them), verified on demand with the gram sets ``gram``
    (``at[node]`` is a node's set; -1 for nodes in no pair). Returns the keeper of each node
    (-1: dead), the similarity to it, and the pairs verified."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pi, minlength=n), out=ptr[1:])
    flat, start, count = gram
    # per node: where its set starts and its size (nodes in no pair are never verified)
    node_start = np.zeros(n, np.int64)
    node_count = np.zeros(n, np.int64)
    has = at >= 0
    node_start[has], node_count[has] = start[at[has]], count[at[has]]
    return kernels().stars(n, ptr, pj.astype(np.int64), flat, node_start, node_count, alive.astype(np.bool_), threshold)  # type: ignore[no-any-return]
