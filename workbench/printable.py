"""Text from data made safe for a terminal: control characters are shown as visible escapes, never sent raw."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), the
# bidirectional overrides that make text display in another order than it reads, and lone surrogates
# (undecodable bytes of a file name), which no terminal encoding can print
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control character written as an escape (ESC [2J → ``\\x1b[2J``), so data
    can neither move the cursor, retitle the window, clear the screen nor write the clipboard.
    Tabs stay; newlines stay too, unless ``newlines=False`` (one-line cells), where tabs go as well."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(_escape, text) if pattern.search(text) else text
