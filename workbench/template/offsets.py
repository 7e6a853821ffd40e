"""Batched tokenisation with character offsets (fast path for byte-level BPE) and char-to-token lookups."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class Offsets:
    """Token character offsets as two sorted lists, so a character maps to its token by bisection."""

    __slots__ = ("starts", "ends", "whole")

    def __init__(self, starts: list[int], ends: list[int], whole: bool = False) -> None:
        self.starts = starts
        self.ends = ends
        # The tokens tile the text and each token's characters are exactly what it decodes to (ASCII text, offsets
        # from byte lengths): tokens [a, b) decode to text[starts[a]:ends[b - 1]], no decode needed.
        self.whole = whole

    @classmethod
    def of(cls, pairs: Sequence[Sequence[int]]) -> Offsets:
        return cls([p[0] for p in pairs], [p[1] for p in pairs])


def tokens_overlapping(off: Offsets, start: int, end: int, lo: int = 0) -> tuple[int, int]:
    """[first, last) tokens whose characters overlap [start, end)."""
    i = bisect_right(off.ends, start, lo)
    return i, max(i, bisect_left(off.starts, end, i))


class Codec:
    """Encode many texts (ids + offsets, add_special_tokens=False) and decode many id lists, as fast as the tokenizer allows."""

    FAST_FROM = 64  # texts per call from which the byte-level path pays for its per-vocabulary table

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "_tokenizer", None)
        self._decode_batch = getattr(backend, "decode_batch", None)
        self.plain_backend = plain_backend(tokenizer)
        self._byte_lengths: Any = None
        self._measured = False
        self._added: set[int] | None = None
        self._tails: dict[str, list[int]] = {}

    @property
    def byte_lengths(self) -> Any:
        """Bytes per token id for the byte-level path (None when it does not apply); built on first use: a
        large vocabulary takes a second, which a small input never earns back."""
        if not self._measured:
            self._byte_lengths = byte_lengths(self.tokenizer) if self.plain_backend else None
            self._measured = True
        return self._byte_lengths

    def prefix_ids(self, text: str, ids: list[int], off: Offsets, prefix: str) -> list[int] | None:
        """The ids ``prefix`` (a text prefix of ``text``, whose ids and offsets are given) tokenises to, without
        tokenising it all; None where that cannot be done exactly (the caller encodes ``prefix`` itself).

        Exact for byte-level BPE (the tokenizers the byte-level path takes): added tokens are split out of the
        text before anything else, and the text between them is tokenised piece by piece. So ``prefix``'s ids are
        ``text``'s up to the last added token that ends inside ``prefix``, then the ids of the rest of
        ``prefix`` on its own (usually a role header such as "assistant\n": one short, cached encode)."""
        if not self._measured or self.byte_lengths is None or not text.startswith(prefix):
            return None
        if self._added is None:
            backend = getattr(self.tokenizer, "_tokenizer", None)
            self._added = set(backend.get_added_tokens_decoder()) if backend is not None else set()
        added = self._added
        i = bisect_right(off.ends, len(prefix)) - 1
        while i >= 0 and ids[i] not in added:
            i -= 1
        if i < 0:
            return None
        tail = prefix[off.ends[i] :]
        if not tail:
            return ids[: i + 1]
        rest = self._tails.get(tail)
        if rest is None:
            rest = self.tokenizer._tokenizer.encode_batch_fast([tail], add_special_tokens=False)[0].ids
            if len(self._tails) >= 4096:
                self._tails.clear()
            self._tails[tail] = rest
        return ids[: i + 1] + rest

    def decode_many(self, seqs: list[list[int]]) -> list[str]:
        if self._decode_batch is not None:
            return list(self._decode_batch(seqs, skip_special_tokens=False))
        return [self.tokenizer.decode(s, skip_special_tokens=False, clean_up_tokenization_spaces=False) for s in seqs]

    def encode_many(self, texts: list[str]) -> tuple[list[list[int]], list[Offsets]]:
        """Ids and character offsets of each text, tokenised with add_special_tokens=False."""
        backend = getattr(self.tokenizer, "_tokenizer", None)
        if self.plain_backend and backend is not None:
            if (len(texts) >= self.FAST_FROM or self._measured) and self.byte_lengths is not None:
                return self._encode_byte_level(backend, texts)
            # The Rust tokenizer straight: what tokenizer(texts, add_special_tokens=False) runs, minus its conversions.
            encs = backend.encode_batch(texts, add_special_tokens=False)
            return [e.ids for e in encs], [Offsets.of(e.offsets) for e in encs]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [Offsets.of(o) for o in enc["offset_mapping"]]

    def _encode_byte_level(self, backend: Any, texts: list[str]) -> tuple[list[list[int]], list[Offsets]]:
        """Byte-level BPE without offset tracking (about twice as fast): a token's characters follow
        from its byte length. A text whose byte count does not add up is re-encoded with offsets."""
        import unicodedata

        import numpy as np

        lengths = self.byte_lengths
        assert lengths is not None
        all_ids: list[list[int]] = []
        all_off: list[Offsets] = []
        for text, enc in zip(texts, backend.encode_batch_fast(texts, add_special_tokens=False)):
            ids = enc.ids
            arr = lengths[np.asarray(ids, dtype=np.int64)] if ids else np.zeros(0, dtype=np.int64)
            ends = np.cumsum(arr)
            ascii_text = text.isascii()
            raw = text.encode("utf-8", "surrogatepass") if not ascii_text else b""
            total = len(text) if ascii_text else len(raw)
            if (ends[-1] if len(ends) else 0) != total or (not ascii_text and not unicodedata.is_normalized("NFC", text)):
                slow = backend.encode(text, add_special_tokens=False)
                all_ids.append(slow.ids)
                all_off.append(Offsets.of(slow.offsets))
                continue
            starts = ends - arr
            if not ascii_text:
                b = np.frombuffer(raw, dtype=np.uint8)
                char_of_byte = np.cumsum((b & 0xC0) != 0x80) - 1
                starts = char_of_byte[np.minimum(starts, len(b) - 1)]
                ends = char_of_byte[np.maximum(ends - 1, 0)] + 1
            all_ids.append(ids)
            all_off.append(Offsets(starts.tolist(), ends.tolist(), ascii_text))
        return all_ids, all_off


def byte_lengths(tokenizer: PreTrainedTokenizerBase) -> Any:
    """Bytes per token id for a byte-level BPE (each vocabulary character stands for one byte), or None."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    names = (type(backend.model).__name__, type(backend.decoder).__name__ if backend.decoder else "")
    normalizer = type(backend.normalizer).__name__ if backend.normalizer is not None else "NFC"
    if names != ("BPE", "ByteLevel") or normalizer != "NFC" or "ByteLevel" not in repr(backend.pre_tokenizer):
        return None
    import numpy as np

    vocab = backend.get_vocab(with_added_tokens=True)
    lengths = np.zeros(max(vocab.values(), default=0) + 1, dtype=np.int64)
    for token, i in vocab.items():
        lengths[i] = len(token)
    for i, added in backend.get_added_tokens_decoder().items():
        if added.lstrip or added.rstrip:
            return None  # whitespace the token swallows would shift the count
        lengths[i] = len(added.content.encode("utf-8"))
    return lengths


def plain_backend(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Can ``tokenizer(texts, add_special_tokens=False)`` be replaced by the Rust ``encode_batch``?

    True for TokenizersBackend classes that keep its ``_encode_plus``: that one only resets padding
    and truncation (done here once, by a warm-up call) before calling the backend."""
    try:
        from transformers import TokenizersBackend
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(tokenizer, TokenizersBackend) or type(tokenizer)._encode_plus is not TokenizersBackend._encode_plus:
        return False
    tokenizer(["warm-up"], add_special_tokens=False)  # leaves the backend with no padding and no truncation
    return True
