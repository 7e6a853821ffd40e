"""`workbench run`: a recipe's stages in order, each skipped when its inputs and settings are unchanged.

Stages and what each writes in the run directory:

- ``ingest``: ``data/ingested.jsonl``, ``data/rejects.jsonl``, ``ingest.json`` (and the held-out file
  ingested to ``heldout.jsonl`` when ``data.heldout`` names one);
- ``dedup``: ``data/deduped.jsonl``, ``data/removed.jsonl`` (reason, cluster, kept row, similarity),
  ``dedup.json``; rows matching ``dedup.against`` eval sets are removed as contaminated, rows
  matching the held-out split as leaked; a ``data.heldout`` fraction is split off here;
- ``check``: ``data/checked.jsonl`` (what training gets), ``data/too_long.jsonl`` (rows over
  ``model.max_length``, removed with reason ``too_long``), ``stats.json``, ``check.json``; a
  finding at ``check.fail_on`` or worse, not in ``check.allow``, stops the run here;
- ``train``: ``adapter/``, ``run.json``, ``train_log.json``, ``loss.png``, ``checkpoints/``;
- ``eval``: ``eval.json`` (base and base+adapter, identical settings);
- ``report``: the markdown report and its figures.

Each stage's key is a content hash of its inputs (the files' bytes, not their names or times),
its recipe sections, the tokenizer and chat template, and the key of the stage before; a stage
whose key matches the one recorded in ``stages.json`` and whose outputs exist is skipped. So a
template edit reruns check, train, eval and report, while a new eval task reruns only eval and
report. Rows in = kept + removed at every step, and each removed row is in a side file with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, WorkbenchError
from workbench.recipe import Recipe
from workbench.records import severity_at_least

STAGES: tuple[str, ...] = ("ingest", "dedup", "check", "train", "eval", "report")
STATE = "stages.json"


@dataclass
class StageRecord:
    """What happened to one stage in this run."""

    name: str
    status: str = "pending"  # ran | skipped | failed | pending | off
    seconds: float = 0.0
    key: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass
class RunResult:
    run_dir: Path
    stages: list[StageRecord]
    report: Path | None = None
    train: Any = None  # the TrainResult when training ran

    @property
    def noop(self) -> bool:
        """True when every stage that ran was skipped: the recipe had already finished."""
        return all(s.status in ("skipped", "off", "pending") for s in self.stages)


@dataclass
class Hooks:
    """Callbacks the CLI passes in: stage start/end, a generic progress bar, training events."""

    stage: Callable[[StageRecord], None] | None = None
    progress: Callable[[str, int, int | None], None] | None = None
    train: Callable[[Any], None] | None = None
    message: Callable[[str], None] | None = None


# --- hashing ------------------------------------------------------------------------------------


def digest_path(path: str | Path) -> str:
    """A content hash of a file, or of every file under a directory (relative names included)."""
    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(_file_hash(f).encode())
    elif p.is_file():
        h.update(_file_hash(p).encode())
    else:
        h.update(f"missing:{p}".encode())
    return h.hexdigest()


def _file_hash(p: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def tokenizer_key(tokenizer: Any) -> str:
    """The tokenizer as it encodes and renders: vocabulary, merges, special tokens, chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else str(sorted(tokenizer.get_vocab().items()))
    specials = {k: str(getattr(tokenizer, k, None)) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    from workbench.template import template_kwargs_of

    return _key(body, specials, getattr(tokenizer, "chat_template", None), getattr(tokenizer, "add_bos_token", None),
                template_kwargs_of(tokenizer))  # fmt: skip


# --- the run --------------------------------------------------------------------------------------

RUN_FILES = (STATE, "run.json", "recipe.yaml", ".workbench.lock")  # a folder holding one of these is a run directory


def guard_run(recipe: Recipe, run_dir: Path, recipe_file: str | Path | None = None) -> None:
    """Refuse, before any work, a run directory or report path that would overwrite what workbench did
    not write: the run directory must be new, empty or a run directory, and hold none of the inputs;
    the report may not replace an input or a folder."""
    from workbench.outputs import check_folder, guard

    d = recipe.data
    inputs: list[Any] = [*d.sources, d.heldout if isinstance(d.heldout, str) else None, *recipe.dedup.against,
                         recipe.model.template, recipe.model.name, recipe_file]  # fmt: skip
    check_folder(run_dir, "run_dir", owned_if=RUN_FILES)
    real = Path(os.path.realpath(run_dir))
    for item in inputs:
        if item is None or not os.path.lexists(str(item)):
            continue
        where = Path(os.path.realpath(str(item)))
        if where == real or real in where.parents:
            raise UsageError(f"run_dir {run_dir} holds the input {item}; a run writes its own files there",
                             "give the run a folder of its own (run_dir), apart from its data")  # fmt: skip
        if where in real.parents:
            raise UsageError(f"run_dir {run_dir} is inside the input {item}", "give the run a folder outside its data")
    if recipe.report.path:
        guard([("report.path", recipe.report.path)], [*inputs, *(run_dir / n for n in ("eval.json", "run.json", "recipe.yaml", "adapter"))])
        if Path(os.path.realpath(recipe.report.path)) == real:
            raise UsageError(f"report.path {recipe.report.path} is the run directory", "name a markdown file, e.g. reports/run.md")


class _Run:
    def __init__(self, recipe: Recipe, run_dir: Path, hooks: Hooks, nproc: int | None = None) -> None:
        self.recipe = recipe
        self.dir = run_dir
        self.hooks = hooks
        self.nproc = nproc  # training processes asked for on the command line (--nproc)
        self.state: dict[str, Any] = _read_json(run_dir / STATE) or {}
        self._tokenizer: Any = None
        self._model_path: str | None = None
        self.train_result: Any = None  # the TrainResult when the train stage ran

    # paths
    def p(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def save_state(self) -> None:
        from workbench.outputs import atomic_text, mark_folder

        mark_folder(self.dir)
        with atomic_text(self.p(STATE)) as fh:
            json.dump(self.state, fh, indent=2, sort_keys=True)

    def progress(self, stage: str) -> Callable[[int, int | None], None] | None:
        hook = self.hooks.progress
        return (lambda done, total=None: hook(stage, done, total)) if hook else None

    def model_path(self) -> str:
        if self._model_path is None:
            from workbench.train import model_path

            spec = self.recipe.model
            on_progress = None
            if spec.name.startswith("tiny-pretrained:"):
                from workbench.train import pretrain

                family = spec.name.split(":", 1)[1] or "chatml"
                if pretrain.cached(pretrain.default_dir(family, spec.tiny or None)) is None and self.hooks.message:
                    self.hooks.message(f"pretraining the small {family} base model on data/corpus/ (once; it is cached)")
                hook = self.hooks.progress
                if hook:
                    on_progress = lambda d: hook("pretrain", int(d["step"]), int(d["steps"]))  # noqa: E731
            self._model_path = model_path(spec, on_progress=on_progress)
        return self._model_path

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from workbench.template import load_tokenizer

            m = self.recipe.model
            self._tokenizer = load_tokenizer(self.model_path(), template=m.template, template_kwargs=m.template_kwargs)
        return self._tokenizer

    # keys
    def keys(self) -> dict[str, str]:
        r = self.recipe
        d = r.data
        sources = [(s, digest_path(s) if Path(s).exists() else s) for s in d.sources]
        held = (d.heldout, digest_path(d.heldout)) if isinstance(d.heldout, str) else d.heldout
        from workbench import __version__

        # the version is part of every key: a new release may read, check or train differently
        k_ingest = _key("ingest", __version__, sources, held, d.format, d.mapping)
        against = [(a, digest_path(a)) for a in r.dedup.against]
        k_dedup = _key("dedup", k_ingest, r.dedup.model_dump(), against, d.seed)
        template = (r.model.template, digest_path(r.model.template)) if r.model.template and Path(r.model.template).exists() else r.model.template
        k_check = _key("check", k_dedup, r.model.name, r.model.tiny, template, tokenizer_key(self.tokenizer()),
                       r.model.max_length, r.check.model_dump(), r.mask.model_dump())  # fmt: skip
        k_train = _key("train", k_check, r.model.model_dump(), r.lora.model_dump(), r.quant.model_dump(),
                       r.train.model_dump(), d.limit, d.seed)  # fmt: skip
        if self.nproc and self.nproc > 1 or r.train.distributed:
            # more processes is a bigger effective batch, and the accelerate config says how they train
            dist = digest_path(r.train.distributed) if r.train.distributed else None
            k_train = _key("train", k_train, self.nproc, dist)
        from workbench.eval.tasks import default_task_dirs

        k_eval = _key("eval", k_train, r.eval.model_dump(), [digest_path(d) for d in default_task_dirs()])  # user's and shipped tasks
        k_report = _key("report", k_eval, r.report.model_dump())
        return dict(zip(STAGES, (k_ingest, k_dedup, k_check, k_train, k_eval, k_report), strict=True))


def run(
    recipe: Recipe,
    *,
    until: str | None = None,
    start_from: str | None = None,
    force: bool = False,
    hooks: Hooks | None = None,
    recipe_file: str | Path | None = None,
    train_resume: str | None = None,
    nproc: int | None = None,
) -> RunResult:
    """Run the recipe's stages in order; skip those whose key and outputs are already in the run dir.

    ``nproc`` (or ``train.distributed`` in the recipe): the train stage runs under ``accelerate launch`` on
    that many processes; every other stage runs once, here.

    ``until``: stop after this stage. ``start_from``: rerun this stage and every later one even
    when cached. ``force``: rerun everything. An interrupted run resumes: finished stages are
    skipped, and an interrupted training continues from its newest complete checkpoint written with
    the same settings and data (others are set aside, with a message). ``train_resume``
    ("fresh" | "auto" | "required") overrides that choice (`workbench train [--resume]`). The run
    directory is locked while this runs: a second run on it fails at once.
    """
    from workbench.train import check_launch, current_world, read_config, run_lock, should_launch

    if current_world().size > 1:
        raise UsageError("workbench run was started on several processes (accelerate launch / torchrun)",
                         "run `workbench run RECIPE --nproc N`: the data stages, eval and report run once and only training is launched")  # fmt: skip
    if should_launch(recipe, nproc):  # a bad accelerate config fails now, not after the data stages
        check_launch(recipe, read_config(recipe.train.distributed) if recipe.train.distributed else None)
    hooks = hooks or Hooks()
    guard_run(recipe, recipe.resolved_run_dir(), recipe_file)  # before the lock makes the folder
    with run_lock(recipe.resolved_run_dir(), command="workbench run", on_message=hooks.message):
        return _run(recipe, until=until, start_from=start_from, force=force, hooks=hooks, train_resume=train_resume, nproc=nproc)


def _run(recipe: Recipe, *, until: str | None, start_from: str | None, force: bool, hooks: Hooks, train_resume: str | None,
         nproc: int | None) -> RunResult:
    for flag, value in (("--until", until), ("--from", start_from)):
        if value is not None and value not in STAGES:
            raise UsageError(f"{flag} {value!r} is not a stage", f"stages: {', '.join(STAGES)}")
    last = STAGES.index(until) if until else len(STAGES) - 1
    first_forced = 0 if force else (STAGES.index(start_from) if start_from else len(STAGES))
    if start_from and STAGES.index(start_from) > last:
        raise UsageError(f"--from {start_from} comes after --until {until}")
    run_dir = recipe.resolved_run_dir()
    r = _Run(recipe, run_dir, hooks, nproc)
    keys = r.keys()
    records = [StageRecord(name) for name in STAGES]
    report: Path | None = None
    for i, rec in enumerate(records):
        if i > last:
            break
        rec.key = keys[rec.name]
        if rec.name == "dedup" and not recipe.dedup.enabled:
            pass  # still runs: it splits the held-out fraction and writes the file check reads
        if rec.name in ("eval", "report") and not recipe.eval.tasks and not _has_heldout(r):
            rec.status, rec.message = "off", "no eval tasks and no held-out split"
            _emit(hooks, rec)
            continue
        saved = r.state.get(rec.name) or {}
        if i < first_forced and saved.get("key") == rec.key and saved.get("status") == "done" and _outputs_exist(r, rec.name):
            rec.status, rec.counts, rec.message = "skipped", saved.get("counts", {}), "unchanged"
            _emit(hooks, rec)
            if rec.name == "report":
                report = Path(saved.get("counts", {}).get("path", "")) or None
            continue
        rec.status = "running"
        _emit(hooks, rec)
        interrupted = saved.get("key") == rec.key and saved.get("status") == "running"
        resume = (train_resume or ("auto" if interrupted else "fresh")) if rec.name == "train" else False
        r.state[rec.name] = {"key": rec.key, "status": "running"}
        for later in STAGES[i + 1 :]:
            r.state.pop(later, None)  # a rerun stage invalidates everything after it
        r.save_state()
        t0 = time.perf_counter()
        try:
            rec.counts = STAGE_FUNCS[rec.name](r, resume=resume)
        except BaseException as e:
            rec.seconds = round(time.perf_counter() - t0, 2)
            rec.status = "failed"
            rec.message = e.message if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
            if rec.name != "train":  # an interrupted training keeps its "running" mark to resume from
                r.state[rec.name] = {"key": rec.key, "status": "failed", "message": rec.message}
                r.save_state()
            _emit(hooks, rec)
            raise
        rec.seconds = round(time.perf_counter() - t0, 2)
        rec.status = "ran"
        r.state[rec.name] = {"key": rec.key, "status": "done", "counts": rec.counts, "seconds": rec.seconds}
        r.save_state()
        _emit(hooks, rec)
        if rec.name == "report":
            report = Path(rec.counts["path"])
    return RunResult(run_dir, records, report, r.train_result)


def _emit(hooks: Hooks, rec: StageRecord) -> None:
    if hooks.stage:
        hooks.stage(rec)


def _has_heldout(r: _Run) -> bool:
    return r.recipe.data.heldout is not None


def _outputs_exist(r: _Run, stage: str) -> bool:
    need = {
        "ingest": ["data/ingested.jsonl", "ingest.json"],
        "dedup": ["data/deduped.jsonl", "data/removed.jsonl", "dedup.json"],
        "check": ["data/checked.jsonl", "check.json", "stats.json"],
        "train": ["adapter/adapter_config.json", "run.json"],
        "eval": ["eval.json"],
        "report": [],
    }[stage]
    if stage == "report":
        path = (r.state.get("report") or {}).get("counts", {}).get("path")
        return bool(path) and Path(path).is_file()
    return all(r.p(n).exists() for n in need)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    from workbench.outputs import atomic_text

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_text(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        fh.write("\n")


def _load(path: Path) -> list[Any]:
    from workbench import data as wd

    return wd.load([path]).conversations


# --- stages ---------------------------------------------------------------------------------------


def stage_ingest(r: _Run, **_: Any) -> dict[str, Any]:
    from workbench import data as wd

    d = r.recipe.data
    if not d.sources:
        raise WorkbenchError("the recipe names no training data", "set data.sources: [file.jsonl, ...]")
    rep = wd.ingest_to(d.sources, r.p("data", "ingested.jsonl"), format=d.format, mapping=d.mapping or None,
                           rejects_path=r.p("data", "rejects.jsonl"), on_progress=r.progress("ingest"))  # fmt: skip
    summary = rep.to_dict()
    counts = {"read": rep.read, "written": rep.written, "rejected": rep.rejected}
    if isinstance(d.heldout, str):
        held = wd.ingest_to([d.heldout], r.p("heldout.jsonl"), format=d.format, mapping=d.mapping or None,
                                rejects_path=r.p("data", "heldout.rejects.jsonl"))  # fmt: skip
        summary["heldout"] = {"file": d.heldout, "read": held.read, "written": held.written, "rejected": held.rejected}
        counts["heldout"] = held.written
    _write_json(r.p("ingest.json"), summary)
    return counts


def stage_dedup(r: _Run, **_: Any) -> dict[str, Any]:
    from workbench import dedup as dd
    from workbench.data import write_conversations
    from workbench.dedup import load_against, write_outputs
    from workbench.dedup import summary as dedup_summary
    from workbench.outputs import write_jsonl

    rc, d = r.recipe.dedup, r.recipe.data
    convs = _load(r.p("data", "ingested.jsonl"))
    against = [load_against(a) for a in rc.against]
    if isinstance(d.heldout, str) and r.p("heldout.jsonl").is_file():
        against.append(load_against(r.p("heldout.jsonl"), leak=True))
    cfg = dd.DedupConfig(threshold=rc.threshold, on=rc.on, keep=rc.keep, exact=rc.exact and rc.enabled,
                         near=rc.near and rc.enabled, num_perm=rc.num_perm, ngram=rc.ngram,
                         contam_ngram=rc.contam_ngram)  # fmt: skip
    result = dd.dedup(convs, config=cfg, against=against, on_progress=r.progress("dedup"))
    result = write_outputs(result, r.p("data", "deduped.jsonl"), r.p("data", "removed.jsonl"))
    summary = dedup_summary(result)
    counts = {"read": len(convs), "kept": len(result.kept), "removed": len(result.removed)}
    counts.update({k: v for k, v in sorted(_reasons(result.removed).items())})
    if isinstance(d.heldout, float):
        # split after dedup (no duplicate pair straddles train and held-out) and after data.limit (1% of the rows used)
        from workbench.train.data import limit_and_split

        by_id = sorted(result.kept, key=lambda c: c.id)  # the split depends on the rows, not on their file order
        train, held, over = limit_and_split(by_id, limit=d.limit, heldout=d.heldout, seed=d.seed)
        keep = {id(c) for c in train}
        write_conversations(r.p("heldout.jsonl"), held)
        write_conversations(r.p("data", "deduped.jsonl"), [c for c in result.kept if id(c) in keep])
        write_jsonl(r.p("data", "over_limit.jsonl"),
                    (c.to_dict() | {"removed": {"reason": "over_limit", "detail": f"data.limit={d.limit}"}} for c in over))  # fmt: skip
        counts["heldout"] = len(held)
        if over:
            counts["over_limit"] = len(over)
        summary["heldout_split"] = {"fraction": d.heldout, "rows": len(held), "limit": d.limit, "over_limit": len(over)}
    _write_json(r.p("dedup.json"), summary)
    return counts


def _reasons(removed: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in removed:
        out[x.reason] = out.get(x.reason, 0) + 1
    return out


def stage_check(r: _Run, **_: Any) -> dict[str, Any]:
    from workbench import data as wd
    from workbench.checks import run_checks
    from workbench.data import write_conversations
    from workbench.outputs import write_jsonl

    rec = r.recipe
    tok = r.tokenizer()
    convs = _load(r.p("data", "deduped.jsonl"))
    max_len = rec.model.max_length
    df = wd.frame(convs, tokenizer=tok, max_length=max_len, on_progress=r.progress("check"))
    too_long = set(df.filter(df["tokens"] > max_len)["id"].to_list())
    kept = [c for c in convs if c.id not in too_long]
    write_jsonl(r.p("data", "too_long.jsonl"),
                (c.to_dict() | {"removed": {"reason": "too_long", "detail": f"over model.max_length={max_len} tokens"}}
                 for c in convs if c.id in too_long))  # fmt: skip
    summary = wd.summary(df, max_length=max_len) | {"too_long_removed": len(too_long)}
    _write_json(r.p("stats.json"), summary)
    report = run_checks(tok, kept, model_dir=r.model_path(), max_length=max_len, strategy=rec.mask.strategy)
    _write_json(r.p("check.json"), report.to_dict())
    write_conversations(r.p("data", "checked.jsonl"), kept)
    counts = {"rows": len(convs), "too_long": len(too_long), "kept": len(kept), **report.severity_counts}
    blocking = [] if rec.check.fail_on == "never" else [
        f for f in report.findings if severity_at_least(f.severity, rec.check.fail_on) and f.code not in rec.check.allow
    ]  # fmt: skip
    if blocking:
        f = blocking[0]
        more = f" (and {len(blocking) - 1} more: {', '.join(sorted({b.code for b in blocking[1:]}))})" if len(blocking) > 1 else ""
        raise WorkbenchError(
            f"check stopped the run before training: {f.code} ({f.severity}): {f.message}{more}; details in {r.p('check.json')}",
            f"{f.hint or 'fix the data or the template'}; or accept it with check.allow: [{f.code}] in the recipe",
        )
    return counts


def stage_train(r: _Run, *, resume: Any = "fresh") -> dict[str, Any]:
    from workbench.train import launch_train, should_launch, train

    rec = r.recipe
    data = rec.data.model_copy(update={"heldout": str(r.p("heldout.jsonl")) if r.p("heldout.jsonl").is_file() else None})
    recipe = rec.model_copy(update={"data": data})
    key = r.state.get("train", {}).get("key")
    if should_launch(recipe, r.nproc):  # the workers train on the checked rows; nothing above runs twice
        res = launch_train(recipe, run_dir=r.dir, resume=resume, nproc=r.nproc, prepared=r.p("data", "checked.jsonl"),
                           on_progress=r.hooks.train, data_stages=True, stage_key=key)  # fmt: skip
    else:
        res = train(recipe, run_dir=r.dir, resume=resume, on_progress=r.hooks.train, prepared=_load(r.p("data", "checked.jsonl")),
                    data_stages=True, stage_key=key)  # fmt: skip
    r.train_result = res
    return {"steps": res.steps, "first_loss": res.first_loss, "last_loss": res.last_loss, "eval_loss": res.eval_loss,
            "examples": res.examples, "tokens_per_s": res.tokens_per_s, "backend": res.backend}  # fmt: skip


def train_sources(recipe: Recipe, *, resume: bool = False, on_progress: Callable[[Any], None] | None = None) -> Any:
    """`workbench train --no-data-stages`: train on the recipe's sources as they are (ingested and masked,
    no dedup, decontamination or check gate); the run record says so, and the pipeline's cached train,
    eval and report stages are forgotten, since the adapter no longer comes from the checked data."""
    from workbench.train import TrainEvent, run_lock, train

    run_dir = recipe.resolved_run_dir()
    say = (lambda m: on_progress(TrainEvent("message", message=m))) if on_progress else None
    with run_lock(run_dir, command="workbench train --no-data-stages", on_message=say):
        state = _read_json(run_dir / STATE) or {}
        if any(k in state for k in ("train", "eval", "report")):
            for stage in ("train", "eval", "report"):
                state.pop(stage, None)
            _write_json(run_dir / STATE, state)
        return train(recipe, run_dir=run_dir, resume=resume, on_progress=on_progress, data_stages=False)


def stage_eval(r: _Run, **_: Any) -> dict[str, Any]:
    from workbench.eval import evaluate_run

    # evaluate reports progress as messages ("base: demo-quantity ..."), not counts
    base, adapted, path = evaluate_run(r.dir, on_progress=r.hooks.message, recipe=r.recipe)  # this recipe's eval section, not training's copy
    counts: dict[str, Any] = {"path": str(path)}
    for res, who in ((base, "base"), (adapted, "adapter")):
        for task, t in sorted(res.tasks.items()):
            for metric, m in sorted(t.metrics.items()):
                counts[f"{who}:{task}:{metric}"] = round(m.value, 4) if m.value is not None else None
    return counts


def stage_report(r: _Run, **_: Any) -> dict[str, Any]:
    from workbench.report import write_report

    path = write_report(r.dir, r.recipe.report.path)
    return {"path": str(path)}


STAGE_FUNCS: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest": stage_ingest,
    "dedup": stage_dedup,
    "check": stage_check,
    "train": stage_train,
    "eval": stage_eval,
    "report": stage_report,
}


def state_of(run_dir: Path) -> dict[str, Any]:
    """The recorded stage states of a run directory (for `workbench run --status`)."""
    return _read_json(run_dir / STATE) or {}


def as_dict(result: RunResult) -> dict[str, Any]:
    return {"run_dir": str(result.run_dir), "report": str(result.report) if result.report else None,
            "stages": [asdict(s) for s in result.stages]}  # fmt: skip
