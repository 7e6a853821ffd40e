"""Per-row column flags and the small records the session and its passes share: a finding group, a job's progress."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.records import ROLES

ROLE_BIT = {r: 1 << i for i, r in enumerate(ROLES)}
# row flags: cheap vectorised filters
REJECT, OVER, NO_EOS, ZERO, RENDER_ERROR, FLAGGED, ERROR, WARNING = 1, 2, 4, 8, 16, 32, 64, 128
SEVERITY_FLAG = {"error": ERROR, "warning": WARNING}
NUMERIC = ("turns", "chars", "tokens", "trained")
ID_BYTES = 16  # a content id is 16 hex digits (records.conversation_id)


@dataclass
class Group:
    """Rows that share one finding code, with what to say about them.

    ``wide``: a fact of the template true of every row it names (a hidden default system prompt):
    shown once, above the table, not as a badge on each row.
    """

    code: str
    severity: str
    message: str
    hint: str | None
    rows: list[int] | np.ndarray = field(default_factory=list)
    count: int | None = None  # when a finding reports more rows than it names
    wide: bool = False


@dataclass
class Job:
    label: str
    done: int = 0
    total: int | None = None
    finished: bool = False
