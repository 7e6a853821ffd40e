"""lm-eval runs of a base model and base+adapter under identical settings, plus held-out loss and sample generations."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.eval import backends as be
from workbench.eval.backends import default_device as _default_device
from workbench.eval.backends import offline, versions_of
from workbench.eval import heldout as held
from workbench.errors import WorkbenchError
from workbench.eval.results import EvalResults, from_lm_eval
from workbench.eval.tasks import TaskDir, prepare_tasks

ProgressFn = Callable[[str], None]
PACKAGES = ("workbench", "lm_eval", "torch", "transformers", "peft", "datasets", "accelerate")


@dataclass
class Settings:
    """Everything that must be the same for the base run and the adapter run."""

    tasks: list[str]
    limit: int | float | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool | None = None  # None: on when the tokenizer has a chat template
    system_instruction: str | None = None
    fewshot_as_multiturn: bool = True
    gen_kwargs: dict[str, Any] | None = None
    seed: int = 1234
    batch_size: int | str | None = None  # None: "auto" on CUDA, backends.CPU_BATCH on CPU; the resolved value is recorded
    add_bos_token: bool | None = None  # None: lm-eval's choice for the tokenizer
    tokenizer: str | None = None  # one tokenizer (and chat template) for both runs
    dtype: str = "auto"
    device: str | None = None
    bootstrap_iters: int = 1000
    heldout: str | None = None
    generations: int = 4
    threads: int | None = None  # torch CPU threads; None: 1 on CPU (as training), torch's default on CUDA
    load_in_4bit: bool = False  # the base in 4-bit NF4 for both runs, as QLoRA trained it
    quant_type: str = "nf4"
    double_quant: bool = True
    backend: str = "hf"  # hf (transformers + PEFT) | vllm (CUDA; the adapter served through enable_lora)
    template_kwargs: dict[str, Any] | None = None  # chat-template kwargs for every chat render (enable_thinking, ...)
    guard_tasks: list[str] | None = None  # tasks the report reads as a forgetting guard
    guard_drop: float | None = None  # the largest guard fall that still ships


# --- models and adapters ----------------------------------------------------------------------


def resolve_model(model: str | os.PathLike[str]) -> str:
    """A loadable model: ``tiny:<family>`` / ``tiny-pretrained:<family>`` resolve to their cached folders, a
    local folder becomes absolute."""
    spec = str(model)
    if spec.startswith(("tiny:", "tiny-pretrained:")):
        from workbench.recipe import ModelConfig
        from workbench.train.trainer import model_path

        return model_path(ModelConfig(name=spec))
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            hint = "this looks like an adapter: pass it as --adapter and the base as --model" if (p / "adapter_config.json").is_file() else None
            raise WorkbenchError(f"{p}: no config.json, so not a model folder", hint)
        return str(p.resolve())
    if p.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise WorkbenchError(f"no model at {spec}", "give a model folder, a hub name org/name (cached, offline) or tiny:<family> / tiny-pretrained:<family>")
    return spec


def fingerprint(path: str | os.PathLike[str]) -> str:
    """A cheap identity of a model or adapter folder: config files, and each weight file's size, head and tail."""
    p = Path(path)
    if not p.is_dir():
        return f"name:{path}"
    h = hashlib.blake2b(digest_size=12)
    for f in sorted(p.iterdir()):
        if not f.is_file():
            continue
        if f.name in ("config.json", "adapter_config.json"):
            h.update(f.name.encode() + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".gguf", ".pt", ".pth"):
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
    return h.hexdigest()


def adapter_base(adapter: str | os.PathLike[str]) -> str | None:
    """``base_model_name_or_path`` from a PEFT adapter's adapter_config.json; a folder without one is an error."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise WorkbenchError(f"{adapter}: no adapter_config.json, so not a PEFT adapter folder", "point at a run's adapter/ folder")
    try:
        base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except ValueError as e:
        raise WorkbenchError(f"{cfg}: not valid JSON: {e}") from None
    return str(base) if base else None


def check_adapter_base(adapter: str | os.PathLike[str], model: str, spec: str | None = None) -> None:
    """Refuse an adapter trained on another base: its recorded base must be ``model`` (same folder, same
    weights, or, for a hub name, the same final name component)."""
    from workbench.train.backend import same_base

    base = adapter_base(adapter)
    if base is None or base in (model, spec) or same_base(base, spec or model):
        return  # same_base: Unsloth records its 4-bit copy (unsloth/X-bnb-4bit) of the base X
    bp, mp = Path(base).expanduser(), Path(model)
    if bp.is_dir() and mp.is_dir():
        if bp.resolve() == mp.resolve() or fingerprint(bp) == fingerprint(mp):
            return
    elif not bp.exists() and bp.name == mp.name:
        return  # e.g. trained on "org/Name", evaluated on a local download ".../Name"
    raise WorkbenchError(
        f"adapter {adapter} was trained on {base}, not on {spec or model}",
        f"evaluate with --model {base}, or pass --skip-base-check if {spec or model} holds the same weights",
    )


# --- running ----------------------------------------------------------------------------------


def evaluate(
    model: str | os.PathLike[str],
    *,
    adapter: str | os.PathLike[str] | None = None,
    tasks: Sequence[str],
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    apply_chat_template: bool | None = None,
    system_instruction: str | None = None,
    gen_kwargs: Mapping[str, Any] | None = None,
    seed: int = 1234,
    include_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    data: Mapping[str, str | os.PathLike[str]] | None = None,
    heldout: str | os.PathLike[str] | None = None,
    generations: int = 4,
    tokenizer: str | os.PathLike[str] | None = None,
    batch_size: int | str | None = None,
    add_bos_token: bool | None = None,
    dtype: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    load_in_4bit: bool = False,
    backend: str = "hf",
    template_kwargs: Mapping[str, Any] | None = None,
    check_base: bool = True,
    allow_online: bool = False,
    on_progress: ProgressFn | None = None,
) -> EvalResults:
    """Evaluate ``model`` (with ``adapter`` when given) on lm-eval ``tasks`` and the held-out split.

    ``include_path``: extra task folders beside recipes/tasks. ``data``: TASK -> data file for a
    local task (e.g. ``{"gsm8k_local": "test.jsonl"}``). ``heldout``: a held-out file (anything
    `ingest` reads) for loss and perplexity on all its rows, ``generations`` sample generations,
    and the data of the ``heldout*`` tasks. ``tokenizer``: one tokenizer (and chat template) for
    both runs; default the model's. ``batch_size``: lm-eval's (None: "auto" on CUDA, 32 on CPU).
    ``threads``: torch CPU threads (None: 1 on CPU). ``load_in_4bit``: the base in 4-bit NF4 as
    QLoRA trains it. ``backend``: "hf" or "vllm" (CUDA). ``template_kwargs``: passed to every chat
    render (e.g. ``{"enable_thinking": False}``). ``check_base``: refuse an adapter whose adapter_config.json
    names another base. Offline (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE) unless ``allow_online``.
    """
    settings = _settings(locals())
    return evaluate_pair(model, None, settings, adapters=[adapter], include_path=include_path, data=data,
                         check_base=check_base, allow_online=allow_online, on_progress=on_progress)[0]  # fmt: skip


def evaluate_pair(
    model: str | os.PathLike[str],
    adapter: str | os.PathLike[str] | None,
    settings: Settings,
    *,
    adapters: Sequence[str | os.PathLike[str] | None] | None = None,
    include_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    data: Mapping[str, str | os.PathLike[str]] | None = None,
    check_base: bool = True,
    allow_online: bool = False,
    on_progress: ProgressFn | None = None,
) -> list[EvalResults]:
    """Run the base model and base+``adapter`` with the same ``settings`` (one task setup for both).

    ``adapters`` replaces the default pair [None, adapter] with any list of runs.
    """
    say = on_progress or (lambda msg: None)
    runs = list(adapters) if adapters is not None else [None, adapter]
    spec = str(model)
    model_path = resolve_model(model)
    for a in runs:
        if a is not None and check_base:
            check_adapter_base(a, model_path, spec)
        elif a is not None:
            adapter_base(a)
    data = dict(data or {})
    conversations = held.read(settings.heldout) if settings.heldout else []
    with tempfile.TemporaryDirectory(prefix="workbench-heldout-") as tmp:
        if conversations:
            from workbench.data.export import write_conversations

            canonical = Path(tmp) / "heldout.jsonl"  # the heldout tasks read canonical messages, whatever the input schema
            write_conversations(canonical, conversations)
            for t in settings.tasks:
                if t.startswith("heldout"):
                    data.setdefault(t, canonical)
        with offline(not allow_online), prepare_tasks(settings.tasks, include_path, data) as task_dir:
            return [_run_one(model_path, a, settings, task_dir, conversations, say) for a in runs]


def _settings(kw: dict[str, Any]) -> Settings:
    fields = Settings.__dataclass_fields__
    s = Settings(list(kw["tasks"]), **{k: v for k, v in kw.items() if k in fields and k not in ("tasks", "gen_kwargs", "heldout", "tokenizer", "template_kwargs")})
    s.gen_kwargs = dict(kw["gen_kwargs"]) if kw.get("gen_kwargs") else None
    s.template_kwargs = dict(kw["template_kwargs"]) if kw.get("template_kwargs") else None
    s.heldout = str(kw["heldout"]) if kw.get("heldout") else None
    s.tokenizer = str(kw["tokenizer"]) if kw.get("tokenizer") else None
    return s


def _run_one(model: str, adapter: str | os.PathLike[str] | None, s: Settings, task_dir: TaskDir,
             conversations: list[Any], say: ProgressFn) -> EvalResults:  # fmt: skip
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        import datasets

        datasets.disable_progress_bars()
    if s.backend not in be.BACKENDS:
        raise WorkbenchError(f"unknown eval backend {s.backend!r}", f"one of {', '.join(be.BACKENDS)}")
    device = s.device or _default_device()
    batch, threads = be.resolve_batch_size(s.batch_size, device), be.resolve_threads(s.threads, device)
    with be.pinned_threads(threads):  # the same rule as training: unpinned, 2 threads on a busy 2-core box ran 10x slower
        return _evaluate_loaded(model, adapter, s, task_dir, conversations, say, device, batch, threads)


def _evaluate_loaded(model: str, adapter: str | os.PathLike[str] | None, s: Settings, task_dir: TaskDir, conversations: list[Any],
                     say: ProgressFn, device: str, batch: int | str, threads: int | None) -> EvalResults:  # fmt: skip
    import lm_eval

    label = "base+adapter" if adapter else "base"
    say(f"loading {label}" + (" (4-bit base)" if s.load_in_4bit else ""))
    if s.backend == "vllm":
        max_gen = (s.gen_kwargs or {}).get("max_gen_toks")
        lm = be.vllm_lm(be.vllm_args(model, adapter, dtype=s.dtype, batch_size=batch, seed=s.seed, load_in_4bit=s.load_in_4bit,
                                     tokenizer=s.tokenizer, add_bos_token=s.add_bos_token, template_kwargs=s.template_kwargs,
                                     max_gen_toks=int(max_gen) if max_gen else None))  # fmt: skip
    else:
        lm = be.hf_lm(model, adapter, device=device, dtype=s.dtype, batch_size=batch, tokenizer=s.tokenizer, add_bos_token=s.add_bos_token,
                      template_kwargs=s.template_kwargs, load_in_4bit=s.load_in_4bit, quant_type=s.quant_type, double_quant=s.double_quant)  # fmt: skip
    tok = lm.tokenizer
    if s.template_kwargs:  # held-out loss and sample generations render as lm-eval's prompts do
        from workbench.template.chat import set_template_kwargs

        set_template_kwargs(tok, s.template_kwargs)
    chat = s.apply_chat_template if s.apply_chat_template is not None else bool(getattr(tok, "chat_template", None))
    if chat and not getattr(tok, "chat_template", None):
        raise WorkbenchError(f"{s.tokenizer or model}: the tokenizer has no chat template", "pass --no-chat-template")
    settings = {**s.__dict__, "apply_chat_template": chat, "add_bos_token": bool(lm.add_bos_token), "device": device,
                "batch_size": batch, "threads": threads}  # fmt: skip
    result = EvalResults(
        model={"path": model, "fingerprint": fingerprint(model)},
        adapter={"path": str(adapter), "base": adapter_base(adapter), "fingerprint": fingerprint(adapter)} if adapter else None,
        settings=settings,
        versions=versions_of(PACKAGES),
    )
    if s.tasks:
        say(f"lm-eval {label}: {', '.join(s.tasks)}")
        try:
            raw = lm_eval.simple_evaluate(
                model=lm, tasks=list(s.tasks), task_manager=task_dir.manager(), limit=s.limit, num_fewshot=s.num_fewshot,
                apply_chat_template=chat, system_instruction=s.system_instruction, fewshot_as_multiturn=s.fewshot_as_multiturn,
                gen_kwargs=dict(s.gen_kwargs) if s.gen_kwargs else None, log_samples=True, bootstrap_iters=s.bootstrap_iters,
                random_seed=s.seed, numpy_random_seed=s.seed, torch_random_seed=s.seed, fewshot_random_seed=s.seed,
            )  # fmt: skip
        except (ConnectionError, OSError) as e:
            raise WorkbenchError(f"a task's data could not be loaded: {str(e).splitlines()[0]}",
                                 "offline: use local tasks or pass --data TASK=FILE") from None  # fmt: skip
        result.tasks, result.samples = from_lm_eval(raw or {})
    if conversations and s.backend == "hf":
        say(f"held-out loss {label}")
        model_obj = lm.model
        loss_batch = batch if isinstance(batch, int) else be.AUTO_LOSS_BATCH
        result.heldout = held.loss(model_obj, tok, conversations, path=s.heldout or "", batch_size=loss_batch)
        if s.generations:
            say(f"sample generations {label}")
            max_new = int((s.gen_kwargs or {}).get("max_gen_toks", 128))
            result.generations = held.generate(model_obj, tok, conversations[: s.generations], chat=chat, max_new_tokens=max_new,
                                               seed=s.seed, template_kwargs=s.template_kwargs)  # fmt: skip
    return result


# --- a training run ---------------------------------------------------------------------------


def run_paths(run_dir: str | os.PathLike[str]) -> dict[str, Path | None]:
    """What `workbench eval RUN_DIR` reads: recipe.yaml, run.json, adapter/ and the held-out file."""
    run = Path(run_dir)
    if not run.is_dir():
        raise WorkbenchError(f"{run}: no such run directory", "`workbench train RECIPE` makes one")
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise WorkbenchError(f"{run}: no trained adapter (adapter/adapter_config.json)", "train first, or use --model/--adapter")
    recipe = run / "recipe.yaml"
    heldout = next((p for p in (run / "heldout.jsonl", run / "data" / "heldout.jsonl") if p.is_file()), None)
    return {"run": run, "recipe": recipe if recipe.is_file() else None, "info": run / "run.json" if (run / "run.json").is_file() else None,
            "adapter": adapter, "heldout": heldout}  # fmt: skip


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | float | None = None,
    include_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    data: Mapping[str, str | os.PathLike[str]] | None = None,
    allow_online: bool = False,
    on_progress: ProgressFn | None = None,
    recipe: Any = None,
    **overrides: Any,
) -> tuple[EvalResults, EvalResults, Path]:
    """Evaluate a run's base model and base+adapter as its recipe's ``eval`` section says; write ``out``
    (default RUN_DIR/eval.json). ``recipe``: the recipe to take eval settings from (`workbench run` passes
    the current one); default the run's recipe.yaml. ``overrides``: any other Settings field (seed, num_fewshot, ...)."""
    from workbench.eval import results as evalresults
    from workbench import recipe as rc

    p = run_paths(run_dir)
    if recipe is None:
        recipe = rc.load(p["recipe"]) if p["recipe"] else rc.Recipe()
    info = json.loads(p["info"].read_text(encoding="utf-8")) if p["info"] else {}
    model = info.get("model_path") if info.get("model_path") and Path(info["model_path"]).exists() else recipe.model.name
    held_file = p["heldout"]
    if held_file is None and isinstance(recipe.data.heldout, str) and Path(recipe.data.heldout).exists():
        held_file = Path(recipe.data.heldout)
    ev = recipe.eval
    names = list(tasks) if tasks is not None else list(ev.tasks)
    names += [g for g in ev.guard_tasks if g not in names]  # the forgetting guard runs with the same settings
    if held_file is None and any(t.startswith("heldout") for t in names) and not any(t.startswith("heldout") for t in (data or {})):
        raise WorkbenchError(f"{p['run']}: no held-out file for the heldout task(s)", "pass --data heldout=FILE (a messages JSONL)")
    if not names and held_file is None:
        raise WorkbenchError("nothing to evaluate: the recipe names no eval.tasks and the run has no held-out split", "pass --tasks")
    tok_dir = p["adapter"] if any(p["adapter"].glob("tokenizer*")) else None  # type: ignore[union-attr]
    quantized = ev.load_in_4bit if ev.load_in_4bit is not None else bool(info.get("quantized", recipe.quant.load_in_4bit))
    template_kwargs = recipe.model.template_kwargs
    settings = Settings(
        tasks=names, limit=limit if limit is not None else ev.limit, num_fewshot=ev.num_fewshot,
        apply_chat_template=ev.apply_chat_template, gen_kwargs=dict(ev.gen_kwargs) or None, seed=recipe.train.seed,
        batch_size=ev.batch_size, tokenizer=str(tok_dir) if tok_dir else None, heldout=str(held_file) if held_file else None,
        threads=recipe.train.threads, load_in_4bit=quantized, quant_type=recipe.quant.bnb_4bit_quant_type,
        double_quant=recipe.quant.double_quant, backend=ev.backend, template_kwargs=dict(template_kwargs) if template_kwargs else None,
        guard_tasks=list(ev.guard_tasks), guard_drop=ev.guard_drop,
    )  # fmt: skip
    for k, v in overrides.items():
        if k not in Settings.__dataclass_fields__:
            raise TypeError(f"evaluate_run() got an unexpected keyword argument {k!r}")
        setattr(settings, k, v)
    base, adapted = evaluate_pair(model, p["adapter"], settings, include_path=include_path, data=data, allow_online=allow_online, on_progress=on_progress)
    dest = Path(out) if out else p["run"] / "eval.json"  # type: ignore[operator]
    evalresults.save(dest, base, adapted)
    return base, adapted, dest
