"""Row ids and a few details per finding code, gathered while the row checks run."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

DETAILS = 20  # per code, the examples whose details (diffs, problems) go into Finding.data


class Hits:
    """Example ids and a few details per code (a code may carry a cause: ``"not_prefix_preserving:end"``)."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = defaultdict(list)
        self.details: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, code: str, rid: str, **detail: Any) -> None:
        self.ids[code].append(rid)
        if detail and len(self.details[code]) < DETAILS:
            self.details[code].append({"id": rid, **detail})

    def merge(self, other: Hits) -> None:
        """Add ``other``'s hits after these (as if its rows had been checked here, after these rows)."""
        for code, rids in other.ids.items():
            self.ids[code].extend(rids)
        for code, details in other.details.items():
            room = DETAILS - len(self.details[code])
            if room > 0:
                self.details[code].extend(details[:room])


def divergence(a: str | list[Any], b: str | list[Any]) -> int:
    """How many leading items ``a`` and ``b`` share."""
    k = 0
    n = min(len(a), len(b))
    while k < n and a[k] == b[k]:
        k += 1
    return k
