"""Messages between the app's screens and widgets: small dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from textual.message import Message


@dataclass
class OpenExample(Message):
    """Show one row on the example screen; ``order`` is what next/previous step through."""

    row: int
    order: np.ndarray | None = None


@dataclass
class DataChanged(Message):
    """A background pass added columns, findings or clusters; screens redraw what they show."""

    what: str
