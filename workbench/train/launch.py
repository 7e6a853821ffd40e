"""Training on several processes: the accelerate config a recipe names, and the `accelerate launch` that starts them.

``workbench train RECIPE --nproc N`` (or a recipe with ``train.distributed: CONFIG``) does its data work once in
this process, then starts ``accelerate launch [--config_file CONFIG] --num_processes N -m workbench.train.worker
RUN_DIR/launch.json``: one process per device (DDP), or whatever the config names (FSDP, DeepSpeed ZeRO). Rank 0 of
the workers prints its progress events on stdout as ``@workbench:event`` lines, which ``launch_train`` turns back
into the caller's progress callback; everything else the workers print is passed through to stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, WorkbenchError
from workbench.recipe import Recipe
from workbench.train.log import ProgressFn, TrainEvent
from workbench.train.ranks import current_world

EVENT, RESULT, ERROR = "@workbench:event ", "@workbench:result ", "@workbench:error "

# accelerate's distributed_type values, and the strategy each one trains with
STRATEGIES = {
    "NO": "single process", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "MULTI_XPU": "ddp", "MULTI_NPU": "ddp",
    "MULTI_MLU": "ddp", "MULTI_SDAA": "ddp", "MULTI_MUSA": "ddp", "MULTI_HPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed",
}  # fmt: skip


# --- the accelerate config a recipe names -------------------------------------------------------


@dataclass(frozen=True)
class LaunchConfig:
    """An accelerate config file, read and checked before any process starts."""

    path: Path
    distributed_type: str
    strategy: str
    processes: int | None
    machines: int
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def fsdp(self) -> dict[str, Any]:
        return dict(self.raw.get("fsdp_config") or {})


def read_config(path: str | os.PathLike[str]) -> LaunchConfig:
    """Read an accelerate config (YAML or JSON, as `accelerate config` writes it); errors name the file and key."""
    from workbench.recipe import yaml_load

    p = Path(path)
    where = f"train.distributed: {p}"
    if not p.is_file():
        raise WorkbenchError(f"{where}: no such file", "write one with `accelerate config --config_file FILE`, or see README's 'Beyond one machine'")
    import yaml

    try:
        raw = yaml_load(p.read_text(encoding="utf-8"))  # JSON is YAML too
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # yaml's errors carry the line
        raise WorkbenchError(f"{where}: not valid YAML or JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise WorkbenchError(f"{where}: an accelerate config is a mapping of keys, got {type(raw).__name__}")
    kind = str(raw.get("distributed_type") or "")
    if kind not in STRATEGIES:
        raise WorkbenchError(f"{where}: distributed_type: {kind or 'missing'}", f"one of {', '.join(STRATEGIES)} (as `accelerate config` writes it)")
    procs = raw.get("num_processes")
    machines = raw.get("num_machines", 1)
    for key, value in (("num_processes", procs), ("num_machines", machines)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise WorkbenchError(f"{where}: {key}: {value!r} is not a positive integer")
    if kind == "FSDP" and not isinstance(raw.get("fsdp_config") or {}, dict):
        raise WorkbenchError(f"{where}: fsdp_config: expected a mapping of fsdp_* keys")
    if kind == "DEEPSPEED":
        ds = raw.get("deepspeed_config")
        if not isinstance(ds, dict) or not (ds.get("zero_stage") is not None or ds.get("deepspeed_config_file")):
            raise WorkbenchError(f"{where}: deepspeed_config: needs zero_stage (or deepspeed_config_file)", "e.g. deepspeed_config: {zero_stage: 3, zero3_init_flag: true}")
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise WorkbenchError(f"{where}: distributed_type DEEPSPEED needs the deepspeed package", "pip install deepspeed (on the GPU machines)")
    return LaunchConfig(p, kind, STRATEGIES[kind], procs, int(machines or 1), raw)


def check_launch(recipe: Recipe, config: LaunchConfig | None) -> list[str]:
    """Refuse combinations that cannot train; return notes on what the workers will do differently."""
    notes: list[str] = []
    if config is None:
        return notes
    where = f"train.distributed: {config.path}"
    if config.strategy in ("fsdp", "deepspeed") and recipe.train.backend == "unsloth":
        raise WorkbenchError(f"{where}: train.backend=unsloth cannot train under {config.strategy.upper()}", "set train.backend=auto (PEFT + TRL)")
    if config.strategy == "fsdp" and recipe.quant.load_in_4bit:
        # PEFT's FSDP-QLoRA guide: the 4-bit weights are stored in the model's float dtype so FSDP can shard
        # them, loaded once on CPU and broadcast, and sharded with the original parameters flattened
        fsdp = config.fsdp
        for key, want in (("fsdp_cpu_ram_efficient_loading", True), ("fsdp_use_orig_params", False)):
            if fsdp.get(key) is not want:
                raise WorkbenchError(f"{where}: fsdp_config.{key} must be {str(want).lower()} for QLoRA + FSDP",
                                     "see PEFT's FSDP-QLoRA guide; README's 'Beyond one machine' has a config")  # fmt: skip
        if recipe.train.optimizer == "paged_adamw_8bit":
            raise WorkbenchError(f"{where}: train.optimizer=paged_adamw_8bit fails to save checkpoints under FSDP + QLoRA", "use train.optimizer=adamw_torch")
        notes.append("QLoRA + FSDP: 4-bit weights stored in the compute dtype (bnb_4bit_quant_storage), loaded without a device map")
    return notes


# --- the launch ---------------------------------------------------------------------------------


def should_launch(recipe: Recipe, nproc: int | None) -> bool:
    """True when this process should start workers: more than one asked for, or the recipe names a config,
    and no launcher started us already."""
    if current_world().size > 1:
        if nproc is not None:
            raise UsageError("--nproc under accelerate launch / torchrun", "the launcher already started the processes: drop --nproc")
        return False
    if nproc is not None and nproc < 1:
        raise UsageError(f"--nproc {nproc}: must be at least 1")
    return bool(recipe.train.distributed) or (nproc or 1) > 1


def command(spec: Path, *, nproc: int | None, config: LaunchConfig | None) -> list[str]:
    """The `accelerate launch` command line that starts the workers (the venv's own accelerate)."""
    argv = [sys.executable, "-m", "accelerate.commands.launch"]
    if config is not None:
        argv += ["--config_file", str(config.path)]
    else:
        # no config: one machine, DDP over the visible GPUs, or over CPU processes (gloo) without one;
        # accelerate's `--multi_gpu` is its name for "start N processes with torchrun"
        argv += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if nproc is not None:
        argv += ["--num_processes", str(nproc)]
    return [*argv, "-m", "workbench.train.worker", str(spec)]


def launch_train(
    recipe: Recipe,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool | str = False,
    nproc: int | None = None,
    prepared: str | os.PathLike[str] | None = None,
    on_progress: ProgressFn | None = None,
    data_stages: bool | None = None,
    stage_key: str | None = None,
) -> Any:
    """Train under `accelerate launch` and return rank 0's TrainResult.

    ``prepared``: a conversations file (what the data stages kept) the workers train on as is; without it
    each worker ingests and masks the recipe's data itself (deterministic, and nothing is written).
    ``resume``, ``data_stages`` and ``stage_key`` reach every worker's ``train`` as they are.
    """
    from workbench.outputs import atomic_text

    config = read_config(recipe.train.distributed) if recipe.train.distributed else None
    notes = check_launch(recipe, config)
    out = Path(run_dir) if run_dir is not None else recipe.resolved_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "launch.json"
    argv = command(spec, nproc=nproc, config=config)
    with atomic_text(spec) as fh:
        json.dump({"recipe": recipe.model_dump(mode="json"), "run_dir": str(out), "resume": resume,
                   "prepared": str(prepared) if prepared else None, "data_stages": data_stages, "stage_key": stage_key, "command": argv, "notes": notes}, fh, indent=2)  # fmt: skip
    emit = on_progress or (lambda e: None)
    emit(TrainEvent("message", message="launching: " + " ".join(argv[1:])))
    for note in notes:
        emit(TrainEvent("message", message=note))
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(EVENT):
                emit(TrainEvent(**json.loads(line[len(EVENT) :])))
            elif line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            elif line.startswith(ERROR):
                error = json.loads(line[len(ERROR) :])
            else:
                sys.stderr.write(line)  # stdout is data: the workers' chatter is not
        code = proc.wait()
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    if error is not None:
        raise WorkbenchError(error["message"], error.get("hint"))
    if code != 0 or result is None:
        raise WorkbenchError(f"training under accelerate launch failed (exit code {code})", "the workers' output above says why")
    return result_from_dict(result)


def result_from_dict(d: dict[str, Any]) -> Any:
    """A TrainResult from its JSON form (paths back to Path)."""
    from workbench.train.trainer import TrainResult

    known = {f.name for f in fields(TrainResult)}
    kw = {k: v for k, v in d.items() if k in known}
    for key in ("run_dir", "adapter_dir", "merged_dir"):
        if kw.get(key) is not None:
            kw[key] = Path(kw[key])
    return TrainResult(**kw)
