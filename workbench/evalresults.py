"""Evaluation results as plain data, and the results JSON file that `workbench eval` writes.

The file (schema ``workbench.eval/1``) holds the base run and the base+adapter run side by side::

    {
      "schema": "workbench.eval/1",
      "base":    RUN,            # the model alone
      "adapter": RUN | null      # the same model with the adapter, same settings
    }

and each RUN is::

    {
      "model":   {"path": str, "fingerprint": str},            # fingerprint: config + weight-file digest
      "adapter": null | {"path": str, "base": str | null, "fingerprint": str},
      "settings": {                                             # identical in both runs, or compare() refuses
        "tasks": [str], "limit": int | float | null, "num_fewshot": int | null,
        "apply_chat_template": bool, "system_instruction": str | null, "fewshot_as_multiturn": bool,
        "gen_kwargs": {..}, "seed": int, "batch_size": int | str, "add_bos_token": bool | null,
        "tokenizer": str | null, "dtype": str, "device": str, "bootstrap_iters": int,
        "heldout": str | null, "generations": int
      },
      "tasks": {TASK: {
        "n": int,                                              # items scored
        "version": str | null, "num_fewshot": int | null,
        "config_hash": str,                                    # the task's resolved lm-eval config
        "generation_kwargs": {..} | null,                      # as lm-eval ran them
        "higher_is_better": {METRIC: bool},
        "metrics": {"METRIC,FILTER": {"value": float, "stderr": float | null}}   # e.g. "exact_match,strict-match"
      }},
      "samples": {TASK: [{"doc_id": int, "filter": str, "prompt": str, "target": str,
                          "response": str, "metrics": {METRIC: float}}]},      # lm-eval's log_samples, trimmed
      "heldout": null | {"path": str, "rows": int, "skipped": int, "tokens": int,
                         "loss": float, "perplexity": float, "loss_on": str},
      "generations": [{"id": str, "prompt": str, "target": str, "output": str}],
      "versions": {PACKAGE: str | null}
    }

Keys are sorted and floats written as Python's repr, so the same results diff clean.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

SCHEMA = "workbench.eval/1"


@dataclass(frozen=True)
class Metric:
    """One aggregated metric and lm-eval's standard error for it (None when lm-eval gives none)."""

    value: float
    stderr: float | None = None


@dataclass
class TaskResult:
    """One task's aggregated scores, keyed ``metric,filter`` as lm-eval names them."""

    n: int
    metrics: dict[str, Metric]
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    version: str | None = None
    num_fewshot: int | None = None
    config_hash: str = ""
    generation_kwargs: dict[str, Any] | None = None


@dataclass
class Sample:
    """One scored item of one filter: what was asked, what came back, how it scored."""

    doc_id: int
    filter: str
    prompt: str
    target: str
    response: str
    metrics: dict[str, float]


@dataclass
class Heldout:
    """Loss and perplexity on the held-out split."""

    path: str
    rows: int
    skipped: int
    tokens: int
    loss: float
    perplexity: float
    loss_on: str


@dataclass
class Generation:
    """A sample generation for a held-out prompt (greedy, the run's generation settings)."""

    id: str
    prompt: str
    target: str
    output: str


@dataclass
class EvalResults:
    """One model (optionally with an adapter) evaluated under recorded settings."""

    model: dict[str, str]
    adapter: dict[str, str | None] | None
    settings: dict[str, Any]
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    heldout: Heldout | None = None
    generations: list[Generation] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "base+adapter" if self.adapter else "base"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": dict(self.model),
            "adapter": dict(self.adapter) if self.adapter else None,
            "settings": self.settings,
            "tasks": {name: asdict(t) for name, t in sorted(self.tasks.items())},
            "samples": {name: [asdict(s) for s in rows] for name, rows in sorted(self.samples.items())},
            "heldout": asdict(self.heldout) if self.heldout else None,
            "generations": [asdict(g) for g in self.generations],
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResults:
        tasks = {
            name: TaskResult(**{**t, "metrics": {k: Metric(**m) for k, m in t["metrics"].items()}})
            for name, t in d.get("tasks", {}).items()
        }
        return cls(
            model=d["model"],
            adapter=d.get("adapter"),
            settings=d.get("settings", {}),
            tasks=tasks,
            samples={name: [Sample(**s) for s in rows] for name, rows in d.get("samples", {}).items()},
            heldout=Heldout(**d["heldout"]) if d.get("heldout") else None,
            generations=[Generation(**g) for g in d.get("generations", [])],
            versions=d.get("versions", {}),
        )


def save(path: str | os.PathLike[str], base: EvalResults, adapted: EvalResults | None) -> Path:
    """Write the results file atomically (schema above); returns its path."""
    from workbench.export import atomic_text

    doc = {"schema": SCHEMA, "base": base.to_dict(), "adapter": adapted.to_dict() if adapted else None}
    with atomic_text(path) as fh:
        json.dump(doc, fh, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
        fh.write("\n")
    return Path(path)


def load(path: str | os.PathLike[str]) -> tuple[EvalResults, EvalResults | None]:
    """Read a results file: (base, base+adapter or None). A wrong or unreadable file is a WorkbenchError."""
    p = Path(path)
    if not p.is_file():
        raise WorkbenchError(f"{p}: no such results file", "`workbench eval` writes one")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WorkbenchError(f"{p}: not a readable JSON file: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise WorkbenchError(f"{p}: not a workbench results file (schema {got!r}, expected {SCHEMA!r})")
    try:
        base = EvalResults.from_dict(doc["base"])
        adapted = EvalResults.from_dict(doc["adapter"]) if doc.get("adapter") else None
    except (KeyError, TypeError) as e:
        raise WorkbenchError(f"{p}: malformed results file ({type(e).__name__}: {e})") from None
    return base, adapted
