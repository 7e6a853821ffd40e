"""Load a tokenizer (folder, GGUF file or hub name), override its chat template, read its stop tokens."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from workbench.errors import WorkbenchError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --- loading ----------------------------------------------------------------------------------


def load_tokenizer(
    spec: str | Path, *, template: str | Path | None = None, template_kwargs: dict[str, Any] | None = None
) -> PreTrainedTokenizerBase:
    """The tokenizer named by ``spec``: a local folder, a ``.gguf`` file, or a hub name ("org/name").

    ``template`` replaces the chat template: a path to a Jinja file, or the template text itself.
    ``template_kwargs`` are passed to every render of the template (``{"enable_thinking": False}``).
    User mistakes (missing folder, unreachable hub, unreadable files) raise WorkbenchError.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        tokenizer = _load(str(path.parent), spec, gguf_file=path.name)
    elif path.is_dir():
        if not any(path.glob("tokenizer*")) and not any(path.glob("*.gguf")) and not (path / "vocab.json").exists():
            raise WorkbenchError(
                f"{path} holds no tokenizer files",
                "expected tokenizer.json / tokenizer_config.json (or vocab.json + merges.txt, tokenizer.model)",
            )
        ggufs = sorted(path.glob("*.gguf"))
        if not any(path.glob("tokenizer*")) and not (path / "vocab.json").exists() and len(ggufs) == 1:
            tokenizer = _load(str(path), spec, gguf_file=ggufs[0].name)
        else:
            tokenizer = _load(str(path), spec)
    elif path.exists():
        raise WorkbenchError(f"{path} is neither a tokenizer folder nor a .gguf file")
    elif isinstance(spec, str) and _HUB_NAME.match(spec) and not spec.startswith((".", "~")):
        tokenizer = _load_from_hub(spec)
    else:
        raise WorkbenchError(f"no tokenizer at {spec}", "give a model folder, a .gguf file, or a hub name org/name")
    if template is not None:
        tokenizer.chat_template = read_template(template)
    if template_kwargs:
        from workbench.template.chat import set_template_kwargs

        set_template_kwargs(tokenizer, template_kwargs)
    return tokenizer


def read_template(template: str | Path) -> str:
    """A chat template's text: from a file when ``template`` names one, else ``template`` itself if it is Jinja."""
    path = Path(template).expanduser()
    text = str(template)
    if isinstance(template, Path) or len(text) < 4096 and "\n" not in text and path.is_file():
        if not path.is_file():
            raise WorkbenchError(f"template file not found: {template}", "pass a .jinja file (or the template text)")
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise WorkbenchError(f"cannot read template {path}: {e}") from None
    if "{{" in text or "{%" in text:
        return text
    raise WorkbenchError(f"template file not found: {template}", "pass a .jinja file (or the template text)")


def _load(where: str, spec: str | Path, **kwargs: Any) -> PreTrainedTokenizerBase:
    """AutoTokenizer's tokenizer for a local folder. The class it picked last time for the same files is loaded
    directly (AutoTokenizer would load the same class the same way), which skips the torch import its config
    machinery brings: most of a tokenizer-only command's start-up."""
    from workbench.template import autoclass

    k = autoclass.key(where, kwargs)
    cls = autoclass.recall(k)
    if cls is not None:
        try:
            return cls.from_pretrained(where, **kwargs)
        except Exception:  # noqa: BLE001 - the files changed under the same stamp: AutoTokenizer decides again
            pass
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as e:
        raise WorkbenchError(f"cannot load a tokenizer from {spec}: {first_line(e)}") from None
    autoclass.remember(k, type(tokenizer))
    return tokenizer


def _load_from_hub(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:  # the local hub cache first: no network needed when the model was fetched before
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        raise WorkbenchError(
            f"cannot fetch tokenizer {name!r}: the Hugging Face hub is not reachable from here",
            "pass a local folder holding the tokenizer files (or a .gguf file), "
            "or fetch it on a connected machine with `huggingface-cli download " + name + "`",
        )
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise WorkbenchError(
            f"cannot load tokenizer {name!r} from the hub: {first_line(e)}",
            "check the name; gated models need `huggingface-cli login`",
        ) from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint, so an offline machine fails in seconds, not after retries."""
    import socket

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- stop tokens ------------------------------------------------------------------------------


@dataclass(slots=True)
class StopTokens:
    """What ends generation, as each file tells it: the tokenizer, config.json and generation_config.json."""

    tokenizer_eos: str | None
    tokenizer_eos_id: int | None
    config_eos_ids: list[int] | None  # None: no config.json or no eos_token_id in it
    generation_eos_ids: list[int] | None  # None: no generation_config.json or no eos_token_id in it
    pad: str | None
    pad_id: int | None
    bos: str | None
    bos_id: int | None
    adds_bos: bool  # encoding text with add_special_tokens=True prepends BOS
    source: str | None = None  # the folder config files were read from
    notes: list[str] = field(default_factory=list)

    def all_eos_ids(self) -> list[int]:
        ids: list[int] = []
        for group in ([self.tokenizer_eos_id], self.config_eos_ids or [], self.generation_eos_ids or []):
            ids += [i for i in group if i is not None and i not in ids]
        return ids


def eos_ids_in(path: str | Path) -> list[int] | None:
    """``eos_token_id`` of a config.json or generation_config.json as a list (int or list in the file); None if absent."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        value = json.loads(p.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return list(value)
    return None


def model_dir_of(tokenizer: PreTrainedTokenizerBase) -> Path | None:
    """The local folder the tokenizer was loaded from (where config.json would be), if any."""
    name = getattr(tokenizer, "name_or_path", None)
    if not name:
        return None
    p = Path(name)
    if p.is_file():
        p = p.parent
    return p if p.is_dir() else None


def stop_tokens(tokenizer: PreTrainedTokenizerBase, model_dir: str | Path | None = None) -> StopTokens:
    """Stop-token facts of a tokenizer and (when found) its model folder's config files."""
    folder = Path(model_dir) if model_dir is not None else model_dir_of(tokenizer)
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos_id = tokenizer.bos_token_id
    facts = StopTokens(
        tokenizer_eos=tokenizer.eos_token,
        tokenizer_eos_id=tokenizer.eos_token_id,
        config_eos_ids=eos_ids_in(folder / "config.json") if folder else None,
        generation_eos_ids=eos_ids_in(folder / "generation_config.json") if folder else None,
        pad=tokenizer.pad_token,
        pad_id=tokenizer.pad_token_id,
        bos=tokenizer.bos_token,
        bos_id=bos_id,
        adds_bos=bool(probe) and bos_id is not None and probe[0] == bos_id,
        source=str(folder) if folder else None,
    )
    return facts


def token_strings(tokenizer: PreTrainedTokenizerBase, ids: Iterable[int]) -> list[str]:
    return [str(t) for t in tokenizer.convert_ids_to_tokens(list(ids))]
