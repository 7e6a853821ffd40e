"""Content lint: mojibake, control characters, HTML residue, template placeholders, empty or echoed answers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbench.records import Conversation, Finding

MAX_EXAMPLES = 5

_MOJIBAKE = re.compile(
    # UTF-8 bytes decoded as latin-1 / cp1252: "Ã©" (é), "â€™" (’), "Â " (nbsp), "Ã¼" (ü)...
    "Ã[\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]"
    "|â€|Â[\u0080-\u00bf]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Fast path for the control check: delete every byte that is fine, see if anything is left.
# C1 controls (U+0080-U+009F) are two UTF-8 bytes starting 0xC2, looked for separately.
_FINE_BYTES = bytes(b for b in range(256) if not (b < 32 and b not in (9, 10, 13) or b == 127))
_HTML_TAG = re.compile(
    r"</?(?:p|div|br|span|a|b|i|u|strong|em|ul|ol|li|table|tbody|thead|tr|td|th|h[1-6]|img|font|"
    r"sup|sub|hr|blockquote|center|small|big|tt|abbr|cite|dl|dt|dd|section|article|nav|header|footer)"
    r"(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_HTML_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_PLACEHOLDER = re.compile(
    r"\{\{\s*[\w.\-]+\s*\}\}"  # {{name}} (Jinja / Mustache)
    r"|(?<![\w\\^_}$])\{[A-Za-z_][A-Za-z0-9_]*\}"  # {name} (str.format), but not LaTeX \frac{a}{b} or x^{n}
    r"|(?<![\w<])<[A-Z][A-Z0-9_]+(?: [A-Z0-9_]+)*>"  # <PLACEHOLDER>, <YOUR NAME>; not List<T>
)
# [INSERT ...], [Your Name], [Enter date]: case varies, so a separate case-insensitive pattern
_BRACKET_WORDS = re.compile(r"\[(?:insert|your|enter|add|placeholder|todo|tbd|fill in)\b[^\]\n]{0,80}\]", re.I)
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    message: str  # "{n} conversations ..." completed with the count
    hint: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("replacement_char", "warning", "contain U+FFFD replacement characters (text lost in decoding)",
             "re-read the source with the right encoding; the original characters are gone from these rows"),
        Rule("mojibake", "warning", "contain mojibake such as 'Ã©' or 'â€™' (UTF-8 read as latin-1/cp1252)",
             "fix with ftfy.fix_text() or re-decode the source as UTF-8"),
        Rule("control_chars", "warning", "contain control characters other than tab and newline",
             "strip them; they tokenise to odd bytes and can break chat templates"),
        Rule("html_tag", "info", "contain HTML tags",
             "scraping residue? strip markup unless the examples are about HTML"),
        Rule("html_entity", "warning", "contain HTML entities such as '&amp;' or '&#39;'",
             "unescape with html.unescape()"),
        Rule("placeholder", "warning", "contain unfilled template placeholders ({{name}}, {name}, <NAME>, [Insert ...])",
             "the generator's template was not filled in; regenerate or drop these rows"),
        Rule("empty_answer", "error", "have an empty assistant turn",
             "drop these rows: an empty target teaches the model to say nothing"),
        Rule("no_answer", "warning", "have no assistant turn (nothing is trained under assistant-only loss)",
             "check the role mapping (--format / --map) or drop these rows"),
        Rule("answer_equals_prompt", "warning", "have an assistant answer identical to the prompt before it",
             "the answer column may point at the prompt; check --map"),
    )
}  # fmt: skip


def _code_free(text: str) -> str:
    return _CODE.sub(" ", text) if "`" in text else text


@dataclass
class Linter:
    """Streaming lint: feed conversations with ``add()``, read grouped findings from ``findings()``."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    seen: int = 0

    def _hit(self, code: str, conv: Conversation, match: str = "") -> None:
        n = self.counts.get(code, 0)
        self.counts[code] = n + 1
        if n < MAX_EXAMPLES:
            self.examples.setdefault(code, []).append(
                {"id": conv.id, "source": str(conv.source), "match": match[:80]}
            )

    def add(self, conv: Conversation) -> None:
        self.seen += 1
        text = "\n".join(m.content for m in conv.messages)
        if "\ufffd" in text:
            self._hit("replacement_char", conv, "\ufffd")
        ascii_only = text.isascii()
        if not ascii_only and ("Ã" in text or "â€" in text or "Â" in text) and (m := _MOJIBAKE.search(text)):
            self._hit("mojibake", conv, text[max(0, m.start() - 10) : m.end() + 10])
        raw = text.encode("utf-8", "surrogatepass")
        if (raw.translate(None, _FINE_BYTES) or (not ascii_only and b"\xc2" in raw)) and (m := _CONTROL.search(text)):
            self._hit("control_chars", conv, repr(m.group()))
        if "<" in text and (m := _HTML_TAG.search(text)) and (m := _HTML_TAG.search(_code_free(text))):
            self._hit("html_tag", conv, m.group())
        if "&" in text and (m := _HTML_ENTITY.search(text)) and (m := _HTML_ENTITY.search(_code_free(text))):
            self._hit("html_entity", conv, m.group())
        if ("{" in text or "<" in text or "[" in text) and (m := _placeholder(text)):
            self._hit("placeholder", conv, m)
        self._answers(conv)

    def _answers(self, conv: Conversation) -> None:
        has_answer = False
        previous = None
        for msg in conv.messages:
            if msg.role == "assistant":
                has_answer = True
                if not msg.content.strip():
                    self._hit("empty_answer", conv)
                elif previous is not None and previous.role == "user" and msg.content.strip() == previous.content.strip():
                    self._hit("answer_equals_prompt", conv, msg.content)
            previous = msg
        if not has_answer:
            self._hit("no_answer", conv)

    def findings(self) -> list[Finding]:
        """One Finding per code that fired, in RULES order, each naming a few example ids."""
        out = []
        for code, rule in RULES.items():
            n = self.counts.get(code, 0)
            if not n:
                continue
            examples = self.examples.get(code, [])
            out.append(
                Finding(
                    code=code,
                    severity=rule.severity,
                    message=f"{n} of {self.seen} conversations {rule.message}",
                    example_ids=[e["id"] for e in examples],
                    hint=rule.hint,
                    data={"count": n, "examples": examples},
                )
            )
        return out


def _placeholder(text: str) -> str | None:
    m = _PLACEHOLDER.search(text) or _BRACKET_WORDS.search(text)
    if m is None:
        return None
    clean = _code_free(text)  # code samples legitimately hold {name} and <T>
    m = _PLACEHOLDER.search(clean) or _BRACKET_WORDS.search(clean)
    return m.group() if m else None


def lint(conversations: Iterable[Conversation]) -> list[Finding]:
    """Content findings over ``conversations``, grouped by code (reported, never fixed)."""
    linter = Linter()
    for conv in conversations:
        linter.add(conv)
    return linter.findings()
