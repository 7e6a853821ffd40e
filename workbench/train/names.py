"""Model names as every command reads them: `tiny:<family>`, `tiny-pretrained:<family>`, a folder, a file or a hub name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOCAL = ("tiny:", "tiny-pretrained:")


def resolve_model_name(spec: str, *, on_progress: Callable[[dict[str, Any]], None] | None = None) -> str:
    """``spec`` as something `load_tokenizer` / `from_pretrained` reads: the small local models are built
    (and cached) the way `run` and `train` build them; anything else is returned unchanged.

    The template layer cannot import training, so commands that only need a tokenizer
    (`check`, `mask`, `tui`) resolve the name here first.
    """
    if not str(spec).startswith(LOCAL):
        return str(spec)
    from workbench.recipe import ModelConfig
    from workbench.train.trainer import model_path

    return model_path(ModelConfig(name=str(spec)), on_progress=on_progress)
