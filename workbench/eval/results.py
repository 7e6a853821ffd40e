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
        "apply_chat_template": bool, "template_kwargs": {..} | null, "system_instruction": str | null,
        "fewshot_as_multiturn": bool, "gen_kwargs": {..}, "seed": int, "batch_size": int | str, "add_bos_token": bool | null,
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
      "samples": {TASK: [{"doc_id": int, "filter": str, "prompt": str, "target": str, "response": str,  # response: filtered
                          "raw": str, "metrics": {METRIC: float}}]},    # lm-eval's log_samples, trimmed; raw: the generation
      "heldout": null | {"path": str, "rows": int, "skipped": int, "tokens": int,
                         "loss": float, "perplexity": float, "loss_on": str},
      "generations": [{"id": str, "prompt": str, "target": str, "output": str}],
      "versions": {PACKAGE: str | null}
    }

Keys are sorted and floats written as Python's repr, so the same results diff clean.
"""

from __future__ import annotations

import hashlib
import json
import math
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
    response: str  # after the task's filter (the extracted answer)
    metrics: dict[str, float]
    raw: str = ""  # what the model generated, before the filter


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
    from workbench.outputs import atomic_text

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


def from_lm_eval(raw: dict[str, Any]) -> tuple[dict[str, TaskResult], dict[str, list[Sample]]]:
    """lm-eval's output as TaskResults and trimmed per-item samples."""
    tasks: dict[str, TaskResult] = {}
    samples: dict[str, list[Sample]] = {}
    configs = raw.get("configs", {})
    for name, res in sorted(raw.get("results", {}).items()):
        metrics: dict[str, Metric] = {}
        for key, value in sorted(res.items()):
            metric, _, filt = key.partition(",")
            if not filt or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            err = res.get(f"{metric}_stderr,{filt}")
            metrics[key] = Metric(float(value), float(err) if isinstance(err, (int, float)) and math.isfinite(err) else None)
        cfg = configs.get(name, {})
        n = raw.get("n-samples", {}).get(name, {}).get("effective", res.get("sample_len", 0))
        tasks[name] = TaskResult(
            n=int(n),
            metrics=metrics,
            higher_is_better={k: bool(v) for k, v in sorted(raw.get("higher_is_better", {}).get(name, {}).items())},
            version=None if raw.get("versions", {}).get(name) is None else str(raw["versions"][name]),
            num_fewshot=raw.get("n-shot", {}).get(name),
            config_hash=config_hash(cfg),
            generation_kwargs=cfg.get("generation_kwargs"),
        )
    for name, rows in sorted(raw.get("samples", {}).items()):
        out = []
        for r in rows:
            args = r.get("arguments") or [[""]]
            first = args[0] if isinstance(args, (list, tuple)) else args
            prompt = first[0] if isinstance(first, (list, tuple)) else first
            resp = _response(r.get("filtered_resps"))
            raw = _response(r.get("resps"))
            raw = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], str) else raw
            metric_names = r.get("metrics") or []
            out.append(Sample(
                doc_id=int(r["doc_id"]), filter=str(r.get("filter", "none")), prompt=str(prompt), target=str(r.get("target", "")),
                response=str(resp if resp is not None else ""), metrics={m: float(r[m]) for m in metric_names if isinstance(r.get(m), (int, float))},
                raw=str(raw if raw is not None else ""),
            ))  # fmt: skip
        samples[name] = sorted(out, key=lambda s: (s.filter, s.doc_id))
    return tasks, samples


def config_hash(cfg: dict[str, Any]) -> str:
    """A task config's identity: functions by name, local data files by content (not by where they lie)."""

    def norm(x: Any, key: str = "") -> Any:
        if isinstance(x, dict):
            return {str(k): norm(v, str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(v, key) for v in x]
        if callable(x):
            return getattr(x, "__qualname__", type(x).__name__)
        if isinstance(x, str) and key in ("data_files", "test", "train", "validation") and os.path.isfile(x):
            h = hashlib.sha256()
            with open(x, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return "sha256:" + h.hexdigest()
        return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)

    return hashlib.sha256(json.dumps(norm(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _response(resps: Any) -> Any:
    """A generation's text, or for a multiple-choice item the index of the most likely choice."""
    if not isinstance(resps, list) or not resps:
        return resps
    if all(isinstance(x, (list, tuple)) and x and isinstance(x[0], (int, float)) for x in resps):
        scores = [float(x[0]) for x in resps]
        return f"choice {scores.index(max(scores))}"
    return resps[0]
