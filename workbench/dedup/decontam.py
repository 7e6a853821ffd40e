"""Eval and held-out sets to check a training set against: loading them, and word n-gram overlap.

An ``--against`` file is either data that ingest reads (its rows become items) or an lm-eval task
YAML whose data is local (its ``test_split``, else ``validation_split``, rendered with
``doc_to_text`` / ``doc_to_target``).

Which reason a matching training row gets:

- ``contaminated``: the file is an lm-eval task, or a data file whose name does not say it is a
  split of your own data (``test.jsonl``, ``gsm8k.jsonl``, ``mmlu_eval.parquet``);
- ``leaked``: the file name says it is another split of the same data (a word ``train``, ``val``,
  ``valid``, ``validation``, ``dev`` or ``split`` in its stem: ``val.jsonl``, ``data_dev.csv``),
  or ``--leak`` was given.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from workbench.errors import WorkbenchError, first_line

SPLIT_WORDS = frozenset({"train", "training", "val", "valid", "validation", "dev", "split"})
TASK_SUFFIXES = (".yaml", ".yml")
MAX_RENDER = 1_000_000  # the most characters (or items) a task template may build by repetition


@dataclass(frozen=True, slots=True)
class AgainstItem:
    """One eval (or held-out) item: where it is, and its prompt and response text."""

    id: str  # "file:line" or "file[row]"
    prompt: str
    response: str

    def text(self, on: str) -> str:
        if on == "prompt":
            return self.prompt
        if on == "response":
            return self.response
        return f"{self.prompt}\n{self.response}" if self.response else self.prompt


@dataclass(slots=True)
class AgainstSet:
    """The items of one ``--against`` file and the reason a training row matching them gets."""

    path: str
    reason: str  # contaminated | leaked
    items: list[AgainstItem]
    notes: list[str] = field(default_factory=list)  # what could not be reproduced (e.g. process_docs)


def reason_for(path: str | os.PathLike[str], *, leak: bool = False) -> str:
    """``leaked`` for another split of the same data (by file name, or ``leak``), else ``contaminated``."""
    p = Path(path)
    if leak:
        return "leaked"
    if p.suffix.lower() in TASK_SUFFIXES:
        return "contaminated"
    stem = p.name.split(".", 1)[0].lower()
    return "leaked" if SPLIT_WORDS & set(re.split(r"[^a-z0-9]+", stem)) else "contaminated"


def load_against(
    path: str | os.PathLike[str],
    *,
    leak: bool = False,
    mapping: dict[str, str] | None = None,
    view: Any = None,
) -> AgainstSet:
    """Read an eval/held-out file (any format ingest reads, or a local lm-eval task YAML) into items.

    ``view(conversation, on)`` picks text out of ingested rows; dedup passes its own."""
    p = Path(path)
    if not p.exists():
        raise WorkbenchError(f"--against {path}: no such file", "give a data file or an lm-eval task YAML")
    reason = reason_for(p, leak=leak)
    if p.suffix.lower() in TASK_SUFFIXES:
        return _load_task(p, reason)
    from workbench.data import ingest

    got = ingest.load([p], mapping=mapping)
    if view is None:
        from workbench.dedup.views import text_view as view
    items = [AgainstItem(str(c.source), view(c, "prompt"), view(c, "response")) for c in got.conversations]
    notes = [f"{len(got.rejects)} rows could not be read"] if got.rejects else []
    return AgainstSet(str(p), reason, items, notes)


# --- lm-eval task YAML --------------------------------------------------------------------------


class _TaskLoader(yaml.SafeLoader):
    """SafeLoader that reads lm-eval's ``!function`` tags as plain strings instead of failing."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {getattr(node, 'value', '')}")


def _read_task_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    try:
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader) or {}
    except yaml.YAMLError as e:
        raise WorkbenchError(f"--against {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise WorkbenchError(f"--against {path}: not an lm-eval task (expected a mapping)")
    base = cfg.pop("include", None)
    if isinstance(base, str) and depth < 4:
        parent = _read_task_yaml(path.parent / base, depth + 1)
        cfg = {**parent, **cfg}
    return cfg


def _resolve_data(name: str, task: Path) -> Path:
    # lm-eval hands data_files to datasets, which resolves them against the working directory;
    # a path relative to the YAML is accepted too.
    cand = [Path(name)] if Path(name).is_absolute() else [Path(name), task.parent / name]
    for c in cand:
        if c.exists():
            return c
    raise WorkbenchError(
        f"--against {task}: data file {name} not found",
        "data_files are read relative to the working directory (as lm-eval does) or to the YAML",
    )


def _task_files(cfg: dict[str, Any], task: Path) -> tuple[str, list[Path]]:
    dpath = str(cfg.get("dataset_path") or "")
    kwargs = cfg.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    split = str(cfg.get("test_split") or cfg.get("validation_split") or "test")
    if dpath not in {"json", "csv", "parquet"}:
        if dpath and Path(dpath).exists():
            files = files or dpath
        else:
            raise WorkbenchError(
                f"--against {task}: its data is not local (dataset_path: {dpath or '?'})",
                "use a task YAML with dataset_path: json and dataset_kwargs.data_files, or pass the data file",
            )
    if isinstance(files, dict):
        if split not in files:
            raise WorkbenchError(f"--against {task}: data_files has no {split!r} split", f"splits: {sorted(files)}")
        files = files[split]
    if not files:
        raise WorkbenchError(f"--against {task}: no dataset_kwargs.data_files")
    names = [files] if isinstance(files, str) else list(files)
    return split, [_resolve_data(str(n), task) for n in names]


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """An eval data file's rows; a row that cannot be read is one error naming the file and line."""
    suffix = path.suffix.lower()
    out: list[tuple[str, Any]] = []
    try:
        if suffix in {".jsonl", ".ndjson"}:
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        out.append((f"{path}:{n}", _json_row(line, f"{path}:{n}")))
        elif suffix == ".json":
            data = _json_row(path.read_text(encoding="utf-8"), str(path))
            data = data.get("data", data) if isinstance(data, dict) else data
            if not isinstance(data, list):
                raise _bad_data(str(path), f"a JSON {type(data).__name__}, not a list of rows")
            out = [(f"{path}[{i}]", r) for i, r in enumerate(data)]
        elif suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as fh:
                out = [(f"{path}:{i + 2}", dict(r)) for i, r in enumerate(csv.DictReader(fh))]
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            out = [(f"{path}[{i}]", r) for i, r in enumerate(pq.read_table(path).to_pylist())]
        else:
            raise WorkbenchError(f"cannot read eval data {path}", "use .jsonl, .json, .csv or .parquet data_files")
    except UnicodeDecodeError as e:
        raise _bad_data(str(path), f"invalid UTF-8 at byte {e.start}") from None
    except (csv.Error, OSError, ValueError) as e:  # pyarrow's errors for a corrupt file are among these
        raise _bad_data(str(path), first_line(e)) from None
    for where, row in out:
        if not isinstance(row, dict):
            raise _bad_data(where, f"a row must be an object, got {type(row).__name__}")
    return out


def _json_row(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _bad_data(where, "JSON nested too deeply") from None
    except ValueError as e:
        detail = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise _bad_data(where, f"malformed JSON ({detail})") from None


def _bad_data(where: str, why: str) -> WorkbenchError:
    return WorkbenchError(f"cannot read eval data {where}: {why}", "fix or remove that row of the task's data file")


def _render(spec: Any, doc: dict[str, Any], env: Any) -> str:
    if spec is None:
        return ""
    if isinstance(spec, str) and spec.startswith("!function"):
        raise WorkbenchError(f"doc_to_text/doc_to_target {spec!r} is Python code; workbench cannot run it")
    if isinstance(spec, str) and ("{{" in spec or "{%" in spec):
        return env.get_template(spec).render(**doc)  # the loader below makes the spec its own name
    if isinstance(spec, str) and spec in doc:
        return str(doc[spec])
    return str(spec)


def sandbox() -> Any:
    """The Jinja environment task templates render in: jinja2's immutable sandbox (as transformers uses for
    chat templates), so a template from a task file reaches no Python internals and runs nothing; sizes
    of repeated strings and powers are capped, so it cannot exhaust memory either."""
    from jinja2 import FunctionLoader, StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Capped(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 256:
                raise SecurityError(f"exponent {right} is too large for a template")
            if operator == "*":
                seq, n = (left, right) if isinstance(right, int) else (right, left)
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_RENDER:
                    raise SecurityError("a repeated string or list too large for a template")
            return super().call_binop(context, operator, left, right)

    return _Capped(
        loader=FunctionLoader(lambda source: source),  # templates compiled once, cached by text
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _load_task(path: Path, reason: str) -> AgainstSet:
    cfg = _read_task_yaml(path)
    split, files = _task_files(cfg, path)
    env = sandbox()
    notes = []
    if cfg.get("process_docs"):
        notes.append("process_docs is not applied: items are the raw rows")
    items: list[AgainstItem] = []
    for f in files:
        for where, doc in _rows(f):
            try:
                prompt = _render(cfg.get("doc_to_text"), doc, env)
                target = _render(cfg.get("doc_to_target"), doc, env)
            except WorkbenchError:
                raise
            except Exception as e:  # a template from a task file may raise anything; the sandbox raises SecurityError
                unsafe = type(e).__name__ == "SecurityError"
                raise WorkbenchError(
                    f"--against {path}: cannot render {where}: {'unsafe template refused: ' if unsafe else ''}{first_line(e)}",
                    "doc_to_text/doc_to_target render in a sandbox: fields of the row and plain filters only",
                ) from None
            items.append(AgainstItem(where, prompt.strip(), target.strip()))
    return AgainstSet(str(path), reason, items, notes)


# --- n-gram overlap -----------------------------------------------------------------------------


@dataclass(slots=True)
class NgramTable:
    """Eval items' word n-grams (not too common) as a sorted hash table, and each item's count."""

    hashes: np.ndarray  # sorted uint64
    items: np.ndarray  # int64: the item holding hashes[t]
    per_item: np.ndarray  # int64: how many kept n-grams each item has
    ks: np.ndarray  # gram lengths to look for: n, and the word counts of shorter items
    max_items: int  # most items one n-gram belongs to
    dropped_common: int  # n-grams ignored as too common


def ngram_table(
    texts: Sequence[str], *, n: int, common: float, min_words: int, casefold: bool = True, nfc: bool = True
) -> NgramTable:
    """Build the table of ``texts``' n-grams. An n-gram in more than ``max(1, common * len(texts))``
    items is boilerplate ("how much money does she have left"), not evidence, and is dropped. An item
    shorter than n words (but at least ``min_words``) counts as one gram of its own length."""
    from workbench.dedup import minhash as mh

    buf, off = mh.pack(texts, nfc=nfc, casefold=casefold)
    flat, start, count = mh.gram_sets(buf, off, n, casefold)
    words = mh.kernels().word_counts(buf, off, casefold)
    keep_item = (words >= n) | (words >= min_words)
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), count)
    sel = np.concatenate([np.arange(s, s + c) for s, c in zip(start[:-1], count)]) if len(texts) else np.zeros(0, int)
    hashes = flat[sel] if len(sel) else np.zeros(0, np.uint64)
    ok = keep_item[owner] if len(owner) else np.zeros(0, bool)
    hashes, owner = hashes[ok], owner[ok]
    order = np.argsort(hashes, kind="stable")
    hashes, owner = hashes[order], owner[order]
    uniq, first, df = np.unique(hashes, return_index=True, return_counts=True)
    limit = max(1, int(common * len(texts)))
    common_mask = np.repeat(df > limit, df)
    hashes, owner = hashes[~common_mask], owner[~common_mask]
    per_item = np.bincount(owner, minlength=len(texts)).astype(np.int64)
    short = np.unique(words[(words < n) & (words >= min_words)])
    ks = np.unique(np.concatenate([[n], short])).astype(np.int64)
    return NgramTable(hashes, owner, per_item, ks, int(df[df <= limit].max()) if (df <= limit).any() else 1, int((df > limit).sum()))


def ngram_overlap(
    texts: Sequence[str], table: NgramTable, *, casefold: bool = True, nfc: bool = True, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """For each text: the eval item sharing the most n-grams with it (-1: none) and how many it shares."""
    from workbench.dedup import minhash as mh

    if len(table.hashes) == 0 or not len(texts):
        return np.full(len(texts), -1, np.int64), np.zeros(len(texts), np.int64)
    best = np.full(len(texts), -1, np.int64)
    shared = np.zeros(len(texts), np.int64)
    for lo in range(0, len(texts), chunk):
        hi = min(len(texts), lo + chunk)
        buf, off = mh.pack(texts[lo:hi], nfc=nfc, casefold=casefold)
        best[lo:hi], shared[lo:hi] = mh.kernels().ngram_hits(buf, off, table.ks, casefold, table.hashes, table.items, table.max_items)
    return best, shared
