"""Training on several processes: ranks from the environment, each rank's device, the accelerate config a
recipe names, the launch command; slow: 2 CPU processes over gloo train like one process with twice the batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench import recipe as rc
from workbench.errors import UsageError, WorkbenchError
from workbench.records import Conversation, Message, Source
from workbench.train import launch
from workbench.train.ranks import World, current_world, describe, model_kwargs

REPO = Path(__file__).resolve().parent.parent


def recipe(tmp_path: Path, sources: list[str] | None = None, **train: Any) -> rc.Recipe:
    raw: dict[str, Any] = {
        "data": {"sources": sources or []},
        "name": "t",
        "model": {"name": "tiny:chatml", "max_length": 128},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"max_steps": 6, "learning_rate": 1e-2, "per_device_batch_size": 4, "optimizer": "adamw_torch",
                  "warmup_ratio": 0.0, "lr_scheduler": "constant", "threads": 1, "seed": 0, **train},
        "run_dir": str(tmp_path / "run"),
    }  # fmt: skip
    return rc.from_dict(raw)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


FSDP_QLORA = """\
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_cpu_ram_efficient_loading: true
  fsdp_offload_params: true
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_use_orig_params: false
machine_rank: 0
mixed_precision: 'no'
num_machines: 1
num_processes: 2
"""


# --- ranks ---------------------------------------------------------------------------------------


def test_the_world_comes_from_the_launchers_environment() -> None:
    assert current_world({}) == World()
    w = current_world({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (w.rank, w.local_rank, w.size, w.strategy, w.main) == (3, 1, 4, "ddp", False)
    assert current_world({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}).sharded
    ds = current_world({"WORLD_SIZE": "2", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"})
    assert ds.strategy == "deepspeed" and not ds.sharded
    assert describe(World()) == "1 process" and describe(w) == "4 processes (DDP)"


def _platform(cuda: bool, quantize: bool) -> Any:
    from workbench.train.trainer import Platform

    return Platform(cuda, "peft", "bf16" if cuda else "fp32", quantize, False, "adamw_torch", None)


def test_each_ddp_rank_loads_its_4bit_model_on_its_own_device(tmp_path: Path) -> None:
    """Regression: device_map was {"": 0} whatever LOCAL_RANK said, so every rank loaded onto GPU 0."""
    pytest.importorskip("transformers")
    r = recipe(tmp_path).model_copy(update={"quant": rc.QuantConfig(load_in_4bit=True)})
    kw = model_kwargs(r, _platform(True, True), World(rank=3, local_rank=1, size=4, strategy="ddp"))
    assert kw["device_map"] == {"": 1}
    assert model_kwargs(r, _platform(False, True), World())["device_map"] == {"": "cpu"}
    assert "device_map" not in model_kwargs(recipe(tmp_path), _platform(True, False), World(1, 1, 2, "ddp"))


def test_fsdp_and_zero3_qlora_store_4bit_weights_in_the_model_dtype_without_a_device_map(tmp_path: Path) -> None:
    import torch

    r = recipe(tmp_path).model_copy(update={"quant": rc.QuantConfig(load_in_4bit=True)})
    for world in (World(0, 0, 2, "fsdp"), World(0, 0, 2, "deepspeed", zero_stage=3)):
        kw = model_kwargs(r, _platform(True, True), world)
        assert "device_map" not in kw
        assert kw["dtype"] == torch.bfloat16 and kw["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16


# --- the accelerate config -----------------------------------------------------------------------


def test_an_fsdp_qlora_config_is_read_and_passed_through(tmp_path: Path) -> None:
    cfg = launch.read_config(write(tmp_path / "fsdp.yaml", FSDP_QLORA))
    assert (cfg.strategy, cfg.processes, cfg.machines) == ("fsdp", 2, 1)
    r = recipe(tmp_path, distributed=str(cfg.path)).model_copy(update={"quant": rc.QuantConfig(load_in_4bit=True)})
    assert any("QLoRA + FSDP" in n for n in launch.check_launch(r, cfg))
    argv = launch.command(tmp_path / "launch.json", nproc=None, config=cfg)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert argv[argv.index("--config_file") + 1] == str(cfg.path) and "--num_processes" not in argv
    assert argv[-3:] == ["-m", "workbench.train.worker", str(tmp_path / "launch.json")]


def test_without_a_config_nproc_launches_ddp_on_one_machine(tmp_path: Path) -> None:
    argv = launch.command(tmp_path / "launch.json", nproc=2, config=None)
    assert "--multi_gpu" in argv and argv[argv.index("--num_processes") + 1] == "2" and "--config_file" not in argv
    assert not launch.should_launch(recipe(tmp_path), None) and not launch.should_launch(recipe(tmp_path), 1)
    assert launch.should_launch(recipe(tmp_path), 2)
    assert launch.should_launch(recipe(tmp_path, distributed="x.yaml"), None)
    with pytest.raises(UsageError, match="--nproc 0"):
        launch.should_launch(recipe(tmp_path), 0)


def test_nproc_under_a_launcher_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not launch.should_launch(recipe(tmp_path, distributed="x.yaml"), None)  # the launcher already did it
    with pytest.raises(UsageError, match="already started"):
        launch.should_launch(recipe(tmp_path), 2)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "no such file"),
        ("distributed_type: [unclosed", "not valid YAML"),
        ("- a list", "a mapping"),
        ("num_processes: 2", "distributed_type: missing"),
        ("distributed_type: MULTI_TPU_PLEASE", "distributed_type: MULTI_TPU_PLEASE"),
        ("distributed_type: MULTI_GPU\nnum_processes: zero", "num_processes: 'zero'"),
        ("distributed_type: FSDP\nfsdp_config: full", "fsdp_config"),
        ("distributed_type: DEEPSPEED\ndeepspeed_config: {}", "zero_stage"),
    ],
)
def test_a_bad_accelerate_config_is_one_error_naming_the_file_and_key(tmp_path: Path, text: str | None, match: str) -> None:
    path = tmp_path / "acc.yaml"
    if text is not None:
        write(path, text)
    with pytest.raises(WorkbenchError, match=match) as e:
        launch.read_config(path)
    assert str(path) in e.value.message


def test_deepspeed_needs_its_package(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(WorkbenchError, match="needs the deepspeed package"):
        launch.read_config(write(tmp_path / "ds.yaml", "distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 3}"))


def test_qlora_fsdp_without_the_settings_it_needs_and_unsloth_under_fsdp_are_refused(tmp_path: Path) -> None:
    cfg = launch.read_config(write(tmp_path / "f.yaml", FSDP_QLORA.replace("fsdp_use_orig_params: false", "fsdp_use_orig_params: true")))
    q = recipe(tmp_path).model_copy(update={"quant": rc.QuantConfig(load_in_4bit=True)})
    with pytest.raises(WorkbenchError, match="fsdp_config.fsdp_use_orig_params must be false"):
        launch.check_launch(q, cfg)
    assert launch.check_launch(recipe(tmp_path), cfg) == []  # plain LoRA under FSDP needs neither
    with pytest.raises(WorkbenchError, match="unsloth cannot train under FSDP"):
        launch.check_launch(recipe(tmp_path, backend="unsloth"), cfg)


def test_the_report_says_how_many_processes_trained(tmp_path: Path) -> None:
    from workbench.report.sections import training as _training

    golden = REPO / "tests" / "data" / "report" / "run"
    info = json.loads((golden / "run.json").read_text())
    recipe_raw = rc.yaml_load((golden / "recipe.yaml").read_text())
    assert not any("processes" in line for line in _training(golden, info, recipe_raw, None))  # not recorded then
    info |= {"processes": 4, "strategy": "fsdp", "distributed": describe(World(0, 0, 4, "fsdp"))}
    table = "\n".join(_training(golden, info, recipe_raw, None))
    assert "| processes | 4 processes (FSDP) |" in table and "accumulation × 4 processes" in table


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    res = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=full, cwd=REPO, timeout=300, check=False)
    res.stderr = " ".join(res.stderr.split())  # rich wraps long lines
    return res


def test_cli_train_with_a_bad_distributed_config_fails_before_launching(tmp_path: Path) -> None:
    r = write(tmp_path / "r.yaml", f"model: {{name: 'tiny:chatml'}}\ntrain: {{distributed: {tmp_path / 'missing.yaml'}}}\nrun_dir: {tmp_path / 'run'}\n")
    res = _cli("train", str(r))
    assert res.returncode == 1 and "train.distributed" in res.stderr and "no such file" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "run" / "launch.json").exists()


def test_workbench_run_started_on_several_processes_says_how_to_launch_it(tmp_path: Path) -> None:
    r = write(tmp_path / "r.yaml", f"model: {{name: 'tiny:chatml'}}\nrun_dir: {tmp_path / 'run'}\n")
    res = _cli("run", str(r), env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert res.returncode == 2 and "--nproc N" in res.stderr and "Traceback" not in res.stderr


# --- two processes over gloo, for real -----------------------------------------------------------


def convs(n: int) -> list[Conversation]:
    out = []
    for i in range(n):
        q = f"Sam has {i % 97} cards and {i % 13} pens. How many cards does Sam have?"
        out.append(Conversation.make([Message("user", q), Message("assistant", f"The answer is {i % 97}. #### {i % 97}")], Source("s", row=i)))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`workbench run --nproc 2 --until train`: the data stages here, training on two processes (DDP over gloo)
    with batch 4 each; then one process with batch 8 on the rows the data stages kept."""
    from workbench import pipeline
    from workbench.data import load
    from workbench.outputs import write_jsonl
    from workbench.train import trainer as tr

    root = tmp_path_factory.mktemp("dist")
    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(root / "cache")
    try:
        src = root / "rows.jsonl"
        write_jsonl(src, (c.to_dict() for c in convs(64)))
        events: list[Any] = []
        two_recipe = recipe(root / "two", [str(src)], per_device_batch_size=4, save_every=3)
        stages = pipeline.run(two_recipe, until="train", nproc=2, hooks=pipeline.Hooks(train=events.append))
        checked = two_recipe.resolved_run_dir() / "data" / "checked.jsonl"
        one = tr.train(recipe(root / "one", per_device_batch_size=8), prepared=load([checked]).conversations)
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_CACHE", None)
        else:
            os.environ["WORKBENCH_CACHE"] = old
    out = two_recipe.resolved_run_dir()
    return {"root": root, "one": one, "two": out, "log": json.loads((out / "train_log.json").read_text()),
            "stages": stages, "events": events, "data": checked}  # fmt: skip


@pytest.mark.slow
def test_two_processes_train_like_one_with_twice_the_batch(runs: dict[str, Any]) -> None:
    one, out = runs["one"], runs["two"]
    l1 = [x["loss"] for x in one.log if "loss" in x]
    l2 = [x["loss"] for x in runs["log"] if "loss" in x]
    assert len(l1) == len(l2) == 6
    # the same 8 rows per step, split 4 + 4: DDP averages the gradients, so only float summation order differs
    assert max(abs(a - b) for a, b in zip(l1, l2)) < 1e-3, (l1, l2)
    assert l2[-1] < l2[0]
    # the data stages ran once, in this process; the workers trained on what check kept
    assert [(s.name, s.status) for s in runs["stages"].stages[:4]] == [("ingest", "ran"), ("dedup", "ran"), ("check", "ran"), ("train", "ran")]
    assert json.loads(out.joinpath("launch.json").read_text())["prepared"] == str(runs["data"])
    info = json.loads((out / "run.json").read_text())
    assert (info["processes"], info["strategy"], info["distributed"]) == (2, "ddp", "2 processes (DDP)")
    assert info["examples"]["train"] == one.examples
    assert json.loads((one.run_dir / "run.json").read_text())["processes"] == 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and len(list(out.rglob("adapter_config.json"))) == 3  # adapter + 2 checkpoints
    # rank 0 alone reported: one "trainable parameters" line, one end event, steps counted once
    msgs = [e.message for e in runs["events"] if e.kind == "message" and "trainable parameters" in (e.message or "")]
    assert len(msgs) == 1 and [e.kind for e in runs["events"]].count("end") == 1
    assert json.loads((out / "launch.json").read_text())["command"][-3:-1] == ["-m", "workbench.train.worker"]
    from workbench.report.sections import training as _training

    table = "\n".join(_training(out, info, rc.yaml_load((out / "recipe.yaml").read_text()), None))
    assert "2 processes (DDP)" in table and "× 2 processes" in table


@pytest.mark.slow
def test_two_processes_resume_from_a_checkpoint(runs: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    src = runs["two"]
    dst = runs["root"] / "resumed" / "run"
    shutil.copytree(src, dst)
    for gone in ("checkpoints/checkpoint-6", "adapter", "run.json"):
        shutil.rmtree(dst / gone) if (dst / gone).is_dir() else (dst / gone).unlink()
    r = recipe(runs["root"] / "resumed", per_device_batch_size=4, save_every=3)
    os.environ["WORKBENCH_CACHE"] = str(runs["root"] / "cache")
    try:
        res = launch.launch_train(r, nproc=2, prepared=runs["data"], resume=True)
    finally:
        os.environ.pop("WORKBENCH_CACHE", None)
    assert res.steps == 6
    assert [x["step"] for x in res.log if "loss" in x] == [1, 2, 3, 4, 5, 6]  # steps 1-3 from the checkpoint's state
    a, b = load_file(src / "adapter" / "adapter_model.safetensors"), load_file(dst / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(float((a[k] - b[k]).abs().max()) < 1e-5 for k in a)
