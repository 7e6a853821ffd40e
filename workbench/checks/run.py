"""Template, EOS, BOS, pad, stop-token, mask and truncation checks over a dataset and a tokenizer: a list of Findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.checks.codes import CODES, Code, finding
from workbench.records import SEVERITIES, Conversation, Finding, Message, conversation_id, severity_at_least

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from workbench.template.chat import ConversationLike

__all__ = ["CODES", "CheckReport", "Code", "check_options", "finding", "run_checks", "sort_findings"]


@dataclass(slots=True)
class CheckReport:
    """What `workbench check` found: findings (worst first), which codes hit each example, and the facts probed."""

    findings: list[Finding]
    rows: int
    rendered: int = 0  # rows the template rendered (0 when it has none)
    by_example: dict[str, list[str]] = field(default_factory=dict)  # example id -> sorted codes
    facts: dict[str, Any] = field(default_factory=dict)  # tokenizer/template facts and token counts
    strategy: str = "assistant"
    max_length: int | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Per code, the number of examples it names (0 for a tokenizer-level finding)."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.code] = out.get(f.code, 0) + len(f.example_ids)
        return out

    @property
    def severity_counts(self) -> dict[str, int]:
        out = {s: 0 for s in reversed(SEVERITIES)}
        for f in self.findings:
            out[f.severity] += 1
        return out

    def worst(self) -> str | None:
        """The most severe finding's severity, or None when there is none."""
        return max((f.severity for f in self.findings), key=SEVERITIES.index, default=None)

    def fails(self, level: str = "error") -> bool:
        """True when a finding at ``level`` or worse exists (the CLI's --fail-on)."""
        return any(severity_at_least(f.severity, level) for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rendered": self.rendered,
            "strategy": self.strategy,
            "max_length": self.max_length,
            "severity_counts": self.severity_counts,
            "counts": self.counts,
            "facts": self.facts,
            "findings": [f.to_dict() for f in self.findings],
        }


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Worst severity first, then by code and message, so reruns diff clean."""
    return sorted(findings, key=lambda f: (-SEVERITIES.index(f.severity), f.code, f.message))


def check_options(*, strategy: str = "assistant", max_length: int | None = None, fail_on: str | None = None) -> None:
    """Raise UsageError (naming the flag) for a bad --strategy, --max-length or --fail-on."""
    from workbench.errors import UsageError
    from workbench.template.mask import STRATEGIES

    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if max_length is not None and max_length <= 0:
        raise UsageError(f"--max-length must be positive, got {max_length}")
    if fail_on is not None and fail_on not in SEVERITIES:
        raise UsageError(f"--fail-on {fail_on!r} is not one of error, warning, info")


def _as_rows(conversations: Iterable[ConversationLike]) -> tuple[list[list[dict[str, Any]]], list[str]]:
    from workbench.template.chat import messages_of

    rows: list[list[dict[str, Any]]] = []
    ids: list[str] = []
    for conv in conversations:
        msgs = messages_of(conv)
        rows.append(msgs)
        if isinstance(conv, Conversation):
            ids.append(conv.id)
        else:
            ids.append(conversation_id([_message(m) for m in msgs]))
    return rows, ids


def _message(m: dict[str, Any]) -> Message:
    reasoning = m.get("reasoning_content")
    return Message(str(m.get("role")), str(m.get("content") or ""), reasoning if isinstance(reasoning, str) else None)


def run_checks(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[ConversationLike],
    *,
    model_dir: str | Path | None = None,
    max_length: int | None = None,
    strategy: str = "assistant",
    on_progress: Callable[[int, int | None], None] | None = None,
    workers: int | None = None,
) -> CheckReport:
    """Check a dataset against a tokenizer and its chat template; never prints, never raises for a bad row.

    Tokenizer-level checks (template present, BOS, pad, stop tokens, system prompt handling) run
    once on probe conversations; per-row checks reuse one render+mask per row. ``model_dir`` is
    where config.json / generation_config.json are read (default: the tokenizer's folder).
    ``workers``: processes for rendering (default: one for small inputs, else mask.render_many's).
    """
    from workbench.checks.rows import row_checks
    from workbench.checks.template import template_checks

    check_options(strategy=strategy, max_length=max_length)
    rows, ids = _as_rows(conversations)
    findings, facts = template_checks(tokenizer, rows, ids, model_dir=model_dir)
    report = CheckReport([], rows=len(rows), strategy=strategy, max_length=max_length, facts={"template": facts.to_dict()})
    if facts.has_template and rows:
        if workers is None and len(rows) < 2000:
            workers = 1  # a process pool costs more than it saves on small inputs
        row_findings, stats = row_checks(
            tokenizer, rows, ids, strategy=strategy, max_length=max_length, workers=workers, on_progress=on_progress
        )
        findings += row_findings
        report.rendered = stats.rendered
        report.facts["tokens"] = stats.tokens
        report.facts["trained_tokens"] = stats.trained_tokens
        report.facts["derivations"] = dict(sorted(stats.derivations.items()))
    elif on_progress:
        on_progress(len(rows), len(rows))
    report.findings = sort_findings(findings)
    by_example: dict[str, set[str]] = {}
    for f in report.findings:
        for rid in f.example_ids:
            by_example.setdefault(rid, set()).add(f.code)
    report.by_example = {rid: sorted(codes) for rid, codes in sorted(by_example.items())}
    return report
