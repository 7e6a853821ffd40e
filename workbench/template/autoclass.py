"""The tokenizer class AutoTokenizer picks for a local folder, remembered so later loads of the same files skip
AutoTokenizer, whose config machinery imports torch (most of a tokenizer-only command's start-up)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Files whose content decides the class AutoTokenizer picks (and what the tokenizer is).
DECIDING = ("tokenizer_config.json", "config.json", "tokenizer.json", "special_tokens_map.json", "added_tokens.json",
            "vocab.json", "merges.txt", "tokenizer.model")  # fmt: skip
FILE = "tokenizer-classes.json"
MAX_ENTRIES = 256


def cache_file() -> Path:
    """Where the remembered classes live: beside workbench's other caches (WORKBENCH_CACHE, ~/.cache/workbench)."""
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench") / FILE


def key(folder: str, kwargs: dict[str, Any]) -> str | None:
    """What the choice depends on: the folder, its deciding files (size and modification time), the load
    arguments and the transformers version. None when the folder cannot be read."""
    from importlib import metadata

    root = Path(folder).resolve()
    try:
        names = list(DECIDING) + [str(v) for v in kwargs.values() if isinstance(v, str)]
        stats = [(n, (root / n).stat().st_size, (root / n).stat().st_mtime_ns) for n in names if (root / n).is_file()]
        version = metadata.version("transformers")
    except (OSError, metadata.PackageNotFoundError):
        return None
    payload = json.dumps([str(root), sorted(kwargs.items()), stats, version], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def recall(k: str | None) -> Any:
    """The class remembered under ``k``, imported; None when there is none (or it no longer imports)."""
    if k is None:
        return None
    entry = _read().get(k)
    if not isinstance(entry, str) or ":" not in entry:
        return None
    module, _, name = entry.partition(":")
    if not module.startswith("transformers."):  # only transformers' own classes: a cache file never picks code
        return None
    from importlib import import_module

    try:
        return getattr(import_module(module), name)
    except (ImportError, AttributeError):
        return None


def remember(k: str | None, cls: type) -> None:
    """Note the class AutoTokenizer picked; a cache that cannot be written is no error (the next load is slower)."""
    module = getattr(cls, "__module__", "")
    if k is None or not module.startswith("transformers."):
        return
    entries = _read()
    entries[k] = f"{module}:{cls.__qualname__}"
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        from workbench.outputs import atomic_text

        path = cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_text(path) as fh:
            json.dump(entries, fh, indent=0, sort_keys=False)
    except OSError:
        pass


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
