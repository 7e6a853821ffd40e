"""lm-eval task folders for one evaluation: the user's and the shipped ones, copied with local data paths resolved.

Where tasks come from, first match wins: ``--include`` folders in the order given, then
``recipes/tasks/`` under the working directory (a project's own tasks), then the tasks that ship
inside the package (``workbench/eval/taskfiles/``, with their data). So a user's edited copy of a
shipped task replaces it. A local task names its data the way lm-eval does (``dataset_path: json``
and ``dataset_kwargs.data_files``). Relative data paths are resolved against the working
directory, then against the YAML's own folder. ``data={TASK: FILE}`` replaces a task's test data.
The copies live in a temporary folder for the evaluation, so no YAML on disk ever changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import WorkbenchError

LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")


SHIPPED = Path(__file__).resolve().parent / "taskfiles"


def default_task_dirs() -> list[Path]:
    """The task folders searched after ``--include``, highest priority first: recipes/tasks under the working
    directory (the user's), then the shipped tasks inside the package."""
    found: list[Path] = []
    for d in (Path.cwd() / "recipes" / "tasks", SHIPPED):
        if d.is_dir() and d.resolve() not in found:
            found.append(d.resolve())
    return found


class _Fn(str):
    """A ``!function module.name`` tag, carried through unchanged."""


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_constructor("!function", lambda loader, node: _Fn(loader.construct_scalar(node)))  # type: ignore[arg-type]
_Dumper.add_representer(_Fn, lambda dumper, value: dumper.represent_scalar("!function", str(value)))


@dataclass
class TaskDir:
    """The prepared include folders, which local task lives in which file, and each one's data files."""

    root: Path
    dirs: list[Path]
    local: dict[str, Path] = field(default_factory=dict)  # task name -> prepared YAML
    data_files: dict[str, list[str]] = field(default_factory=dict)  # task name -> resolved data files
    needs_defaults: bool = False
    _manager: Any = None

    def manager(self) -> Any:
        """One lm-eval TaskManager over these folders (lm-eval's own tasks only when one is asked for)."""
        if self._manager is None:
            from lm_eval.tasks import TaskManager

            # lm-eval lets a later include path override an earlier one: lowest priority first, so the user's copy wins
            self._manager = TaskManager(include_path=[str(d) for d in reversed(self.dirs)] or None, include_defaults=self.needs_defaults)
        return self._manager


@contextlib.contextmanager
def prepare_tasks(
    tasks: Sequence[str],
    include_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    data: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Iterator[TaskDir]:
    """Copy the task folders, resolve data paths, check that every requested task and its data exist."""
    if isinstance(include_path, (str, os.PathLike)):
        include_path = [include_path]
    sources = [Path(p).resolve() for p in (include_path or [])]
    for p in sources:
        if not p.is_dir():
            raise WorkbenchError(f"task folder {p} not found", "--include takes a folder of lm-eval task YAMLs")
    sources += [d for d in default_task_dirs() if d not in sources]
    data = {k: str(v) for k, v in (data or {}).items()}
    root = Path(tempfile.mkdtemp(prefix="workbench-tasks-"))
    try:
        td = TaskDir(root, [])
        for i, src in enumerate(sources):
            dest = root / str(i)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            td.dirs.append(dest)
            for y in sorted(dest.rglob("*.yaml")):
                _resolve(y, src / y.relative_to(dest).parent, data, td)
        unknown = [t for t in data if t not in td.local]
        if unknown:
            raise WorkbenchError(f"--data names task(s) with no local YAML: {', '.join(unknown)}", _known(td))
        for t in tasks:
            if t in td.local:
                missing = [f for f in td.data_files.get(t, []) if not Path(f).exists()]
                if missing:
                    raise WorkbenchError(f"task {t}: data file {missing[0]} not found", f"pass --data {t}=FILE (a JSONL of its rows)")
            else:
                td.needs_defaults = True
        if td.needs_defaults:
            known = td.manager().all_tasks
            bad = [t for t in tasks if t not in td.local and t not in known]
            if bad:
                raise WorkbenchError(f"unknown task(s): {', '.join(bad)}", _known(td))
        yield td
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _known(td: TaskDir) -> str:
    names = sorted(td.local)
    return f"local tasks: {', '.join(names)}; or an lm-eval task name" if names else "no local task YAMLs found (recipes/tasks, --include)"


def _resolve(path: Path, origin: Path, data: Mapping[str, str], td: TaskDir) -> None:
    """Rewrite one copied YAML: absolute data files, ``data`` overrides applied; record it by task name."""
    try:
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as e:
        raise WorkbenchError(f"{origin / path.name}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        return
    name = cfg.get("task") if isinstance(cfg.get("task"), str) else None
    kwargs = cfg.get("dataset_kwargs") if isinstance(cfg.get("dataset_kwargs"), dict) else None
    files = kwargs.get("data_files") if kwargs else None
    if name and name in data:
        split = str(cfg.get("test_split") or "test")
        suffix = Path(data[name]).suffix.lower()
        cfg["dataset_path"] = "parquet" if suffix == ".parquet" else "csv" if suffix == ".csv" else "json"
        kwargs = cfg["dataset_kwargs"] = dict(kwargs or {})
        # the other splits stay (gsm8k_local draws its few-shot examples from its train split)
        others = _absolute(files, origin) if isinstance(files, dict) and suffix in (".jsonl", ".json") else {}
        files = kwargs["data_files"] = {**others, split: str(Path(data[name]).expanduser().resolve())}
    elif files is not None:
        files = kwargs["data_files"] = _absolute(files, origin)  # type: ignore[index]
    if name and name not in td.local:  # folders come highest priority first: the first one with the name wins
        td.local[name] = path
        if files is not None:
            td.data_files[name] = _flat(files)
    path.write_text(yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _absolute(files: Any, origin: Path) -> Any:
    if isinstance(files, dict):
        return {k: _absolute(v, origin) for k, v in files.items()}
    if isinstance(files, list):
        return [_absolute(v, origin) for v in files]
    p = Path(str(files)).expanduser()
    if p.is_absolute() or "://" in str(files):
        return str(files)
    here, beside = Path.cwd() / p, origin / p
    return str(beside.resolve() if beside.exists() and not here.exists() else here.resolve())


def _flat(files: Any) -> list[str]:
    if isinstance(files, dict):
        return [f for v in files.values() for f in _flat(v)]
    if isinstance(files, list):
        return [f for v in files for f in _flat(v)]
    return [] if "://" in str(files) or any(c in str(files) for c in "*?[") else [str(files)]
