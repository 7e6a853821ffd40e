"""Recipes: one YAML per run (data, model, dedup, checks, mask, LoRA, quantisation, training, eval, report)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.errors import WorkbenchError


class Section(BaseModel):
    """A recipe section: unknown keys are errors, the docstring under each field is its help."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class DataConfig(Section):
    sources: list[str] = Field(default_factory=list)
    """Files, directories or hub dataset names to train on (anything `workbench ingest` reads); paths are relative to the working directory."""
    format: str | None = None
    """Force the input schema (messages, sharegpt, alpaca, query-response, prompt-completion) instead of detecting it."""
    mapping: dict[str, str] = Field(default_factory=dict)
    """Rename fields to the schema's names, FIELD: COLUMN (e.g. query: question)."""
    heldout: str | float | None = None
    """Held-out evaluation data: a file (any format `ingest` reads) or a fraction in (0, 1) split off the sources."""
    limit: int | None = Field(default=None, gt=0)
    """Use at most this many training conversations (after a seeded shuffle when the sources hold more)."""
    seed: int = 42
    """Seed for the shuffle behind `limit` and the held-out split."""

    @field_validator("heldout")
    @classmethod
    def _fraction(cls, v: str | float | None) -> str | float | None:
        if isinstance(v, float) and not 0.0 < v < 1.0:
            raise ValueError(f"a held-out fraction must be in (0, 1), got {v}")
        return v


class ModelConfig(Section):
    name: str = "tiny:chatml"
    """A local model folder, a hub name, `tiny:<family>` (chatml | llama3 | mistral | gemma) for the small locally
    built model (random weights), or `tiny-pretrained:<family>`: the same, pretrained once on the shipped corpus
    (data/corpus/) and cached, so a fine-tune has something to build on."""
    template: str | None = None
    """A Jinja chat-template file that replaces the tokenizer's."""
    template_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Variables every render of the chat template gets, in training, checks and eval alike (enable_thinking: false
    for Qwen3's non-thinking prompt, reasoning_effort: low for gpt-oss, date_string to pin Llama-3's date)."""
    max_length: int = Field(default=2048, gt=0)
    """Longest rendered example in tokens; longer ones are dropped (counted, with the reason) rather than truncated."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weights dtype when not quantised: auto is bf16 on a GPU that has it, else fp16 on CUDA, fp32 on CPU."""
    tiny: dict[str, Any] = Field(default_factory=dict)
    """Options for the `tiny:`/`tiny-pretrained:` model (hidden, layers, heads, kv_heads, vocab_size, ...); see workbench.train.tiny.build."""
    attn_implementation: str | None = None
    """Attention kernel passed to from_pretrained (sdpa, eager, flash_attention_2); None lets transformers choose."""

    @field_validator("template_kwargs")
    @classmethod
    def _template_kwargs(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if not key.isidentifier():
                raise ValueError(f"{key!r} is not a name a template can read")
            _json_value(value, key)
        return v


def _json_value(value: Any, where: str) -> None:
    """Template variables are plain data: YAML's dates and the like must be quoted strings."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _json_value(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _json_value(v, f"{where}.{k}")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{where}: a {type(value).__name__} is not a plain value; quote it")


class DedupConfig(Section):
    enabled: bool = True
    """Remove exact and near duplicates (and rows matching the `against` eval sets) before training."""
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """MinHash Jaccard similarity of word-shingle sets at or above which two examples are near duplicates."""
    on: Literal["conversation", "prompt", "response"] = "conversation"
    """Which text is compared: the whole conversation, the prompt side or the response side."""
    keep: Literal["first", "longest", "shortest"] = "first"
    """Which member of a duplicate cluster stays."""
    exact: bool = True
    """Find exact duplicates (after unicode NFC, case and whitespace folding)."""
    near: bool = True
    """Find near duplicates with MinHash LSH."""
    num_perm: int = Field(default=128, gt=0)
    """MinHash permutations."""
    ngram: int = Field(default=5, gt=0)
    """Words per shingle."""
    against: list[str] = Field(default_factory=list)
    """Eval sets to decontaminate against (files ingest reads, or lm-eval task YAMLs with local data)."""
    contam_ngram: int = Field(default=13, ge=0)
    """Words per n-gram for the overlap match against eval items; 0 turns it off."""


class CheckConfig(Section):
    fail_on: Literal["error", "warning", "info", "never"] = "error"
    """Stop before training when a check reports a finding at this severity or worse."""
    allow: list[str] = Field(default_factory=list)
    """Finding codes that never stop the run (e.g. a known, accepted truncation)."""


class MaskConfig(Section):
    strategy: Literal["assistant", "last", "all"] = "assistant"
    """Which tokens carry loss: every assistant turn, only the last one, or the whole conversation."""
    train_eot: bool = True
    """Train the assistant's end-of-turn token too, so the model learns to stop."""


LORA_INITS = ("default", "gaussian", "pissa", "olora", "loftq", "orthogonal")


class LoraConfig(Section):
    r: int = Field(default=16, gt=0)
    """LoRA rank."""
    alpha: float = Field(default=16, gt=0)
    """LoRA scaling numerator: updates are scaled by alpha / r (alpha / sqrt(r) with rsLoRA)."""
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA input."""
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
    """`all-linear`, or module names (q_proj, ...) resolved against the loaded model; a name matching nothing is an error."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA): a learned magnitude per output feature."""
    use_rslora: bool = False
    """Rank-stabilised LoRA: scale by alpha / sqrt(r)."""
    init: str = "default"
    """Adapter initialisation: default (B = 0), gaussian, pissa (or pissa_niter_N, fast SVD), olora, loftq, orthogonal."""
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    """LoRA+: the B matrices learn this many times faster than A (16 is the paper's choice); None turns it off."""
    experts: bool = False
    """For mixture-of-experts models, also adapt the routed experts (by default: attention, router and shared experts)."""
    modules_to_save: list[str] = Field(default_factory=list)
    """Modules trained in full and saved with the adapter (e.g. embed_tokens, lm_head after adding tokens)."""

    @field_validator("init")
    @classmethod
    def _init(cls, v: str) -> str:
        if v not in LORA_INITS and not v.startswith("pissa_niter_"):
            raise ValueError(f"unknown init {v!r}; one of {', '.join(LORA_INITS)} or pissa_niter_N")
        return v


class QuantConfig(Section):
    load_in_4bit: bool = False
    """QLoRA: load the frozen base in 4-bit through bitsandbytes (Unsloth on CUDA)."""
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type; NF4 is the QLoRA paper's."""
    double_quant: bool = True
    """Quantise the quantisation constants too (about 0.4 bits per parameter saved)."""
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Dtype the 4-bit weights are dequantised to for matmuls: auto is bf16 where supported, else fp16 on CUDA, fp32 on CPU."""


class TrainConfig(Section):
    epochs: float = Field(default=1.0, gt=0)
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = Field(default=None, gt=0)
    """Stop after this many optimiser steps."""
    learning_rate: float = Field(default=2e-4, gt=0)
    """Peak learning rate."""
    lr_scheduler: Literal[
        "cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial", "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay"
    ] = "cosine"
    """Learning-rate schedule after warmup."""
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    """Fraction of the steps spent warming the learning rate up from zero."""
    per_device_batch_size: int = Field(default=4, gt=0)
    """Examples per forward pass on each device."""
    gradient_accumulation: int = Field(default=1, gt=0)
    """Forward passes per optimiser step (effective batch = per_device_batch_size x gradient_accumulation x devices)."""
    optimizer: Literal["adamw_8bit", "paged_adamw_8bit", "adamw_torch"] = "adamw_8bit"
    """Optimiser; the 8-bit ones (bitsandbytes) need CUDA and fall back to adamw_torch elsewhere, with a message."""
    weight_decay: float = Field(default=0.0, ge=0.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient clipping norm."""
    packing: bool = False
    """Pack several examples per row (TRL's best-fit-decreasing, padding-free: position ids restart per example, so no example attends to another)."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass to save memory; None: on with CUDA, off on CPU."""
    eval_every: int | None = Field(default=None, gt=0)
    """Evaluate on the held-out data every N steps (and at the end); None: only at the end."""
    save_every: int | None = Field(default=None, gt=0)
    """Write a checkpoint every N steps (for --resume); None: only the final adapter."""
    save_total_limit: int | None = Field(default=2, gt=0)
    """Keep at most this many checkpoints."""
    early_stopping_patience: int | None = Field(default=None, gt=0)
    """Stop when eval loss has not improved for this many evaluations (needs held-out data and eval_every)."""
    logging_every: int = Field(default=1, gt=0)
    """Log loss, learning rate and tokens/s every N steps."""
    seed: int = 42
    """Seed for weights init of the adapter, shuffling and dropout."""
    threads: int | None = Field(default=None, gt=0)
    """torch CPU threads; None: 1 on CPU (fastest on small shared machines), torch's default with CUDA."""
    backend: Literal["auto", "unsloth", "peft"] = "auto"
    """auto: Unsloth when CUDA and unsloth are available, else PEFT + TRL."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Mixed precision: auto is bf16 on a GPU that has it, fp16 on older CUDA, fp32 on CPU."""
    distributed: str | None = None
    """An accelerate config file (`accelerate config --config_file FILE`): DDP, FSDP (also with QLoRA) or DeepSpeed ZeRO,
    one or several machines; `workbench train` / `run` then train under `accelerate launch` with it."""


class EvalConfig(Section):
    tasks: list[str] = Field(default_factory=list)
    """lm-eval task names (or recipes/tasks/*.yaml names) run on base and base+adapter."""
    limit: int | float | None = None
    """Examples per task (a count, or a fraction below 1)."""
    num_fewshot: int | None = Field(default=None, ge=0)
    """Few-shot examples per prompt; None: the task's default."""
    apply_chat_template: bool = True
    """Format prompts with the model's chat template (as the model was trained)."""
    batch_size: int | str | None = None
    """lm-eval batch size for generation and loss (or "auto"); None: auto on CUDA, 32 on CPU."""
    gen_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Generation settings for generative tasks (temperature, max_gen_toks, ...)."""
    load_in_4bit: bool | None = None
    """Evaluate base and base+adapter on a 4-bit NF4 base; None: as training loaded it (QLoRA adapters are judged on the base they were trained on)."""
    backend: Literal["hf", "vllm"] = "hf"
    """hf: transformers + PEFT through lm-eval; vllm: lm-eval's vLLM backend on CUDA, the adapter served with enable_lora."""
    guard_tasks: list[str] = Field(default_factory=list)
    """Forgetting guard: general-ability tasks (e.g. general_knowledge, shipped) run before and after besides `tasks`."""
    guard_drop: float = Field(default=0.05, ge=0.0, le=1.0)
    """The largest fall of a guard task's score that still ships (a larger fall beyond noise is DON'T SHIP)."""


class ReportConfig(Section):
    path: str | None = None
    """Where the markdown report goes; None: report.md in the run directory."""
    note: str | None = None
    """A sentence printed under the report's title: what the evaluation can and cannot show."""


class MergeConfig(Section):
    enabled: bool = False
    """After training, write a merged 16-bit model to <run_dir>/merged."""
    adapters: list[str] = Field(default_factory=list)
    """Further adapter folders to combine with this run's adapter before merging."""
    weights: list[float] = Field(default_factory=list)
    """One weight per adapter (this run's first); empty: equal weights."""
    combination: Literal["linear", "ties", "dare_ties", "dare_linear", "cat", "svd", "magnitude_prune"] = "linear"
    """How several adapters combine: linear (= cat) adds their weight deltas exactly; ties, dare_ties, dare_linear, magnitude_prune work on the full deltas; svd is the delta sum at reduced rank."""
    density: float | None = Field(default=None, gt=0.0, le=1.0)
    """Fraction of weights kept by ties / dare_* / magnitude_prune."""
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """Dtype of the merged model's weights."""


class Recipe(Section):
    """A whole run: data, model, dedup, checks, mask, LoRA, quantisation, training, eval and report."""

    name: str | None = None
    """The run's name; default: the recipe file's stem."""
    run_dir: str | None = None
    """Where the adapter, logs and checkpoints go; default: runs/<name>."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    quant: QuantConfig = Field(default_factory=QuantConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.train.early_stopping_patience is not None and self.data.heldout is None:
            raise ValueError("train.early_stopping_patience needs held-out data (data.heldout)")
        if self.train.early_stopping_patience is not None and self.train.eval_every is None:
            raise ValueError("train.early_stopping_patience needs train.eval_every")
        return self

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / (self.name or "run")

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# --- loading ---------------------------------------------------------------------------------


def _yaml_loader() -> type:
    """A SafeLoader with YAML 1.2 scalars: `on`/`off`/`yes`/`no` stay strings (dedup.on is a key) and
    `1e-4` is a float."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def yaml_load(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def parse_override(text: str) -> tuple[list[str], Any]:
    """`lora.r=16` as (["lora", "r"], 16); the value is parsed as a YAML scalar."""
    import yaml

    key, sep, raw = text.partition("=")
    path = [p for p in key.strip().split(".")]
    if not sep or not all(p.strip() for p in path):
        raise WorkbenchError(f"override {text!r} is not KEY=VALUE", "for example lora.r=16 or train.learning_rate=1e-4")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise WorkbenchError(f"override {text!r}: value is not valid YAML: {e}") from None
    return [p.strip() for p in path], value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set each dotted `key=value` in a copy of the raw recipe dict (validation happens afterwards)."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise WorkbenchError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return out


def from_dict(raw: dict[str, Any], *, source: str = "recipe", overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Validate a recipe dict; errors name the source and the dotted key."""
    data = apply_overrides(raw, overrides)
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise recipe_error(e, source) from None


def load(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read and validate a recipe YAML, applying `key=value` overrides; `name` defaults to the file's stem."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise WorkbenchError(f"{p}: no such recipe", "recipes/ holds the shipped ones")
    try:
        raw = yaml_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise WorkbenchError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise WorkbenchError(f"{p}: a recipe is a mapping of sections, got {type(raw).__name__}")
    if raw.get("name") is None:
        raw["name"] = p.stem
    return from_dict(raw, source=str(p), overrides=overrides)


def recipe_error(e: ValidationError, source: str) -> WorkbenchError:
    """One line per problem: `file: train.lr_warmup_steps: unknown key; did you mean warmup_ratio?`."""
    lines = []
    for err in e.errors():
        loc = [str(x) for x in err["loc"]]
        # drop pydantic's union-branch labels ("literal['all-linear']", "list[str]", "float", ...)
        loc = [x for x in loc if not (("[" in x and "]" in x) or x in {"str", "int", "float", "bool"})]
        dotted = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = _field_names(loc[:-1])
            near = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.5) if loc else []
            msg = f"unknown key; did you mean {near[0]}?" if near else f"unknown key (known: {', '.join(known)})"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and err["type"] not in ("missing", "value_error") and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
        lines.append(f"{source}: {dotted}: {msg}" if loc else f"{source}: {msg}")
    first, rest = lines[0], lines[1:]
    return WorkbenchError(first + "".join(f"\n{line}" for line in rest), "`workbench train --help` and recipes/ show the known keys")


def _field_names(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Recipe
    for part in loc:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def describe() -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every recipe field, for help screens and the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", repr(default), field.description or ""))

    walk(Recipe, "")
    return rows
