"""Checkpoints a run can trust: complete, and written with the same settings and data; the rest are set aside.

Each checkpoint the trainer finishes gets ``workbench_checkpoint.json`` last (after the weights,
optimizer, scheduler, RNG and trainer state), holding the run's key, the settings behind that key
and the size of every file. A checkpoint without it (a kill -9 or a full disk mid-save), or with a
file of another size, is incomplete; one whose key differs from this run's is stale. Neither is
ever resumed: they are moved to ``<run_dir>/checkpoints-set-aside/`` with a message, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from workbench.errors import WorkbenchError

MARKER = "workbench_checkpoint.json"
SET_ASIDE = "checkpoints-set-aside"
_NAME = re.compile(r"^checkpoint-(\d+)$")
# Settings a resumed run may change without invalidating its checkpoints: how long it trains, how
# often it saves, logs and evaluates, and CPU threads. Everything else changes what the steps compute.
RESUMABLE = frozenset({
    "train.epochs", "train.max_steps", "train.save_every", "train.save_total_limit", "train.eval_every",
    "train.logging_every", "train.threads", "train.early_stopping_patience",
})  # fmt: skip
Mode = Literal["fresh", "auto", "required"]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"learning_rate": 1e-4}} -> {"train.learning_rate": 1e-4}."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def key_of(settings: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(settings, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def step_of(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else -1


def found(ckpt_dir: Path) -> list[Path]:
    """checkpoint-N folders, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted((p for p in ckpt_dir.iterdir() if p.is_dir() and _NAME.match(p.name)), key=step_of)


def settings_of(recipe: Any, plat: Any, data: Any) -> dict[str, Any]:
    """What a checkpoint's steps depend on: the recipe's model, mask, LoRA, quantisation and training
    settings (less those a resumed run may change: length, save/eval/log intervals, threads), the
    exact training and held-out rows, and the backend and precision this machine resolved."""
    from workbench.train.log import data_hash

    dump = recipe.model_dump(mode="json")
    flat = flatten({k: dump[k] for k in ("model", "mask", "lora", "quant", "train")})
    flat = {k: v for k, v in flat.items() if k not in RESUMABLE}
    flat.update({"data.train": data_hash(data.train), "data.eval": data_hash(data.eval), "platform.backend": plat.backend,
                 "platform.precision": plat.precision, "platform.quantized": plat.quantize, "platform.optimizer": plat.optimizer})  # fmt: skip
    return flat


def write_marker(ckpt: Path, *, key: str, settings: dict[str, Any], stage_key: str | None = None) -> None:
    """Record a finished checkpoint: its key and settings, and every file's size (written last, atomically)."""
    from workbench.outputs import atomic_text

    files = {str(f.relative_to(ckpt)): f.stat().st_size for f in sorted(ckpt.rglob("*")) if f.is_file() and f.name != MARKER}
    record = {"key": key, "stage_key": stage_key, "step": step_of(ckpt), "settings": settings, "files": files}
    with atomic_text(ckpt / MARKER) as fh:
        json.dump(record, fh, indent=1, sort_keys=True, default=str)


def marker(ckpt: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads((ckpt / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("files"), dict) else None


def incomplete(ckpt: Path) -> str | None:
    """Why this checkpoint cannot be resumed from (None when it is whole)."""
    rec = marker(ckpt)
    if rec is None:
        return "incomplete: no completion record (interrupted or out of disk while saving)"
    for name, size in sorted(rec["files"].items()):
        f = ckpt / name
        if not f.is_file():
            return f"incomplete: {name} is missing"
        if f.stat().st_size != size:
            return f"incomplete: {name} is {f.stat().st_size:,} bytes, {size:,} were written"
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "incomplete: trainer_state.json is unreadable"
    if state.get("global_step") != step_of(ckpt):
        return f"incomplete: trainer_state.json is at step {state.get('global_step')}"
    return None


def changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs, one 'key: old -> new' each (data hashes read 'changed')."""
    out = []
    for k in sorted(set(before) | set(now)):
        if k in RESUMABLE or before.get(k) == now.get(k):
            continue
        if k.startswith("data."):
            out.append(f"{k}: the rows changed")
        else:
            out.append(f"{k}: {before.get(k, '(unset)')!r} -> {now.get(k, '(unset)')!r}")
    return out


def set_aside(ckpt: Path, run_dir: Path) -> Path:
    """Move a checkpoint out of the trainer's way (never delete it); returns where it went."""
    dest_dir = run_dir / SET_ASIDE
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / ckpt.name
    n = 1
    while dest.exists():
        n += 1
        dest = dest_dir / f"{ckpt.name}.{n}"
    shutil.move(str(ckpt), str(dest))
    return dest


def select(
    ckpt_dir: Path, run_dir: Path, *, key: str, settings: dict[str, Any], mode: Mode, say: Callable[[str], None]
) -> Path | None:
    """The checkpoint to resume from (None: start fresh), after setting aside what must not be resumed.

    ``fresh``: nothing is resumed; every earlier checkpoint is set aside. ``auto`` (``workbench run``
    after an interruption): the newest complete checkpoint with this run's key; incomplete and stale
    ones are set aside. ``required`` (``--resume``): as auto, but no complete checkpoint, or a newest
    complete one written with other settings, is an error naming what changed.
    """
    all_ckpts = found(ckpt_dir)
    moved: list[tuple[Path, Path, str]] = []

    def aside(p: Path, why: str) -> None:
        moved.append((p, set_aside(p, run_dir), why))

    chosen: Path | None = None
    if mode == "fresh":
        for p in all_ckpts:
            aside(p, "not resuming")
    else:
        broken = {p: why for p in all_ckpts if (why := incomplete(p))}
        complete = [p for p in all_ckpts if p not in broken]
        for p, why in broken.items():
            aside(p, why)
        matching = [p for p in complete if (marker(p) or {}).get("key") == key]
        newest = complete[-1] if complete else None
        if mode == "required":
            if newest is None:
                _report(moved, say)
                extra = f" ({len(broken)} incomplete set aside in {run_dir / SET_ASIDE})" if broken else ""
                raise WorkbenchError(f"no complete checkpoint to resume in {ckpt_dir}{extra}",
                                     "run without --resume to start over; train.save_every=N writes checkpoints every N steps")  # fmt: skip
            if newest not in matching:
                _report(moved, say)
                diff = changes((marker(newest) or {}).get("settings") or {}, settings) or ["settings recorded differently"]
                raise WorkbenchError(
                    f"cannot resume {newest.name}: it was written with other settings or data: " + "; ".join(diff),
                    "restore those settings to resume, or run without --resume to start over (earlier checkpoints are set aside, not deleted)",
                )
        chosen = matching[-1] if matching else None
        for p in complete:
            if p not in matching:
                diff = changes((marker(p) or {}).get("settings") or {}, settings)
                aside(p, "stale: written with " + ("; ".join(diff) if diff else "other settings"))
        # older matching checkpoints stay, for save_total_limit to rotate
    _report(moved, say)
    return chosen


def _report(moved: list[tuple[Path, Path, str]], say: Callable[[str], None]) -> None:
    for src, dest, why in moved:
        say(f"set aside {src.parent.name}/{src.name} ({why}) -> {dest}")


def marker_callback(key: str, settings: dict[str, Any], stage_key: str | None = None) -> Any:
    """A TrainerCallback that marks each checkpoint complete once the trainer has written all of it."""
    from transformers import TrainerCallback

    class MarkCheckpoint(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                write_marker(ckpt, key=key, settings=settings, stage_key=stage_key)

    return MarkCheckpoint()
