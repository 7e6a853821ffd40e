"""The process `accelerate launch` starts on every rank: read the launch spec, train; rank 0 reports on stdout.

    python -m workbench.train.worker RUN_DIR/launch.json   (started by workbench.train.launch, one per rank)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.train.launch import ERROR, EVENT, RESULT
from workbench.train.ranks import current_world


def _say(prefix: str, obj: Any) -> None:
    sys.stdout.write(prefix + json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    from workbench import recipe as rc
    from workbench.train.trainer import train

    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    world = current_world()
    emit = (lambda e: _say(EVENT, asdict(e))) if world.main else None
    try:
        recipe = rc.from_dict(spec["recipe"], source=args[0])
        prepared = None
        if spec.get("prepared"):
            from workbench.data import load

            prepared = load([spec["prepared"]]).conversations
        resume = spec.get("resume", False)  # False/True or "fresh"/"auto"/"required", as train() takes it
        result = train(recipe, run_dir=spec["run_dir"], resume=resume, on_progress=emit, prepared=prepared,
                       data_stages=spec.get("data_stages"), stage_key=spec.get("stage_key"))  # fmt: skip
    except WorkbenchError as e:
        if world.main:
            _say(ERROR, {"message": e.message, "hint": e.hint})
        return 1
    if world.main:
        _say(RESULT, {k: v for k, v in result.__dict__.items() if k != "log"} | {"log": result.log})
    return 0


if __name__ == "__main__":
    sys.exit(main())

