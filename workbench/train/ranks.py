"""Which training process this is (torchrun / accelerate launch environment), and where its model lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from workbench.recipe import Recipe


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun / accelerate launch environment)."""

    rank: int = 0  # global rank: only rank 0 writes files and reports progress
    local_rank: int = 0  # rank on this machine: the CUDA device this process trains on
    size: int = 1  # processes in all, over every machine
    strategy: str = "single process"  # single process | ddp | fsdp | deepspeed
    zero_stage: int = 0  # DeepSpeed ZeRO stage, when strategy is deepspeed

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """Parameters are sharded across ranks (FSDP, ZeRO-3): no rank holds the whole model."""
        return self.strategy == "fsdp" or (self.strategy == "deepspeed" and self.zero_stage == 3)


def current_world(env: dict[str, str] | None = None) -> World:
    """The world as the launcher described it in the environment (one process when nothing launched us)."""
    env = dict(os.environ) if env is None else env
    size = int(env.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    strategy = "ddp"
    if env.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        strategy = "fsdp"
    elif env.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        strategy = "deepspeed"
    stage = int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0") or 0) if strategy == "deepspeed" else 0
    return World(int(env.get("RANK", "0") or 0), int(env.get("LOCAL_RANK", "0") or 0), size, strategy, stage)


def model_kwargs(recipe: Recipe, plat: Any, world: World) -> dict[str, Any]:
    """``from_pretrained`` arguments: dtype, attention, 4-bit config and where each rank's copy lives."""
    import torch
    from transformers import BitsAndBytesConfig

    q = recipe.quant
    dtype = plat.dtype if recipe.model.dtype == "auto" else getattr(torch, recipe.model.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if recipe.model.attn_implementation:
        kwargs["attn_implementation"] = recipe.model.attn_implementation
    if plat.quantize:
        compute = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(q.compute_dtype, plat.dtype)
        bnb: dict[str, Any] = {"load_in_4bit": True, "bnb_4bit_quant_type": q.bnb_4bit_quant_type,
                               "bnb_4bit_use_double_quant": q.double_quant, "bnb_4bit_compute_dtype": compute}  # fmt: skip
        if world.sharded:
            # FSDP / ZeRO-3 shard only float tensors: the 4-bit weights are stored in the model's dtype, and the
            # sharding engine (not a device map) places them (bitsandbytes' and PEFT's FSDP-QLoRA guides)
            bnb["bnb_4bit_quant_storage"] = dtype
        else:
            # DDP: each rank holds a whole copy on its own device (LOCAL_RANK), never all on device 0
            kwargs["device_map"] = {"": world.local_rank if plat.cuda else "cpu"}
        kwargs["quantization_config"] = BitsAndBytesConfig(**bnb)
    return kwargs


def describe(world: World) -> str:
    """One line for the run record and the report: how many processes trained, and how."""
    if world.size <= 1:
        return "1 process"
    return f"{world.size} processes ({world.strategy.upper() if world.strategy != 'ddp' else 'DDP'})"

