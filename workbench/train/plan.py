"""GPU memory estimate for full fine-tuning, LoRA and QLoRA, from a model's config.json alone.

The arithmetic, per component (bytes):
- weights: 2 per parameter in 16-bit; QLoRA keeps embeddings, norms and lm_head in 16-bit and stores
  every linear layer in NF4: 0.5 per parameter plus the quantisation constants (fp32 absmax per 64
  weights, or with double quantisation an 8-bit absmax plus an fp32 per 256 blocks).
- gradients: full fine-tuning 2 per parameter (bf16); LoRA/QLoRA 4 per adapter parameter (fp32).
- optimizer: AdamW keeps two fp32 moments (8 per trained parameter), 8-bit AdamW two 8-bit ones (2).
  LoRA/QLoRA adapters are also held in fp32 (4 per adapter parameter).
- activations (Korthikanti et al. 2022, with a fused attention kernel so no s x s scores are kept):
  per layer and token, the 16-bit inputs the backward pass needs: 2 x (5h + 2 kv + 4 i_active)
  plus, for LoRA with dropout, one dropped-out copy of each adapted layer's input. With gradient
  checkpointing only each layer's input (2h) is kept, plus one layer recomputed at a time.
  Linear-attention (Gated DeltaNet) layers of hybrid models keep their projections' widths instead
  of q/k/v: 2 x (3h + 2 qkv + 2 v) for the mixer.
- logits: ``full`` (PEFT + TRL: the bf16 logits, their fp32 upcast for the loss and its gradient,
  batch x seq x vocab x 8) or ``chunked`` (Unsloth's fused cross-entropy: 1,024 tokens' logits at a time).
- adapter: the LoRA parameters PEFT creates on the targets the recipe resolves, counted by building
  the model from its config on PyTorch's meta device (no weights, no memory) and attaching the
  adapter there; routed experts only with ``experts``. Without a buildable config: by formula.
- overhead: 1 GB for the CUDA context, cuBLAS workspaces and the allocator's slack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

GB = 1e9  # decimal gigabytes, as GPU specs quote them
METHODS = ("full", "lora", "qlora")
OVERHEAD = 1.0 * GB
CE_CHUNK = 1024  # tokens whose logits a chunked (fused) cross-entropy holds at once


@dataclass
class Shape:
    """The numbers of a decoder that memory depends on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # per active MLP path (dense MLP or one expert)
    vocab: int
    tied: bool
    experts: int = 0  # routed experts per MoE layer (0: dense)
    active_experts: int = 0
    shared_intermediate: int = 0  # shared-expert MLP width in MoE layers
    name: str = "model"
    linear_attention_layers: int = 0  # hybrid models: layers whose mixer is linear attention (Gated DeltaNet)
    linear_qkv: int = 0  # their q+k+v projection width
    linear_v: int = 0  # their value width

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def counts(self) -> dict[str, int]:
        """Parameters by kind: embeddings (in + out), linear layers (attention + MLP), norms, total."""
        h, i = self.hidden, self.intermediate
        attn = h * self.heads * self.head_dim * 2 + 2 * h * self.kv_dim
        if self.experts:
            mlp = self.experts * 3 * h * i + 3 * h * self.shared_intermediate + self.experts * h
        else:
            mlp = 3 * h * i
        linear = self.layers * (attn + mlp)
        emb = self.vocab * h * (1 if self.tied else 2)
        norms = self.layers * 2 * h + h
        return {"embeddings": emb, "linear": linear, "norms": norms, "total": emb + linear + norms}

    def lora_params(self, r: int, *, experts: bool = True) -> int:
        """Adapter parameters with rank ``r`` on every attention and MLP projection (routed experts' MLPs with ``experts``)."""
        h, i, q = self.hidden, self.intermediate, self.heads * self.head_dim
        attn = r * (h + q) * 2 + r * (h + self.kv_dim) * 2
        routed = (self.experts if experts else 0) if self.experts else 1
        mlp_paths = routed + (1 if self.shared_intermediate else 0)
        mlp = r * ((h + i) * 2 + (i + h)) * mlp_paths
        return self.layers * (attn + mlp)


def read_config(spec: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A config dict from a model folder, a config.json path, or a dict; nested text_config is unwrapped."""
    if isinstance(spec, dict):
        cfg = dict(spec)
    else:
        p = Path(spec)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise WorkbenchError(f"{spec}: no config.json found", "give a model folder or its config.json (the hub is not used)")
        try:
            cfg = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise WorkbenchError(f"{p}: not valid JSON: {e}") from None
        cfg.setdefault("_name_or_path", p.parent.name)
    if "text_config" in cfg and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "_name_or_path": cfg.get("_name_or_path")}
    return cfg


def shape_of(cfg: dict[str, Any]) -> Shape:
    """Read a decoder's shape from its config, whatever each family calls the keys."""

    def get(*keys: str, default: Any = None) -> Any:
        for k in keys:
            if cfg.get(k) is not None:
                return cfg[k]
        return default

    hidden = get("hidden_size", "n_embd", "d_model")
    layers = get("num_hidden_layers", "n_layer", "num_layers")
    heads = get("num_attention_heads", "n_head")
    vocab = get("vocab_size")
    if not all(isinstance(x, int) for x in (hidden, layers, heads, vocab)):
        raise WorkbenchError("config lacks hidden_size / num_hidden_layers / num_attention_heads / vocab_size", "is this a decoder's config.json?")
    experts = int(get("num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    moe_i = get("moe_intermediate_size", default=None)
    inter = (moe_i if experts and moe_i else get("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)) or 4 * hidden
    shared = get("shared_expert_intermediate_size", default=0) or 0
    if not shared and get("n_shared_experts") and moe_i:
        shared = int(get("n_shared_experts")) * moe_i
    kinds = cfg.get("layer_types") or []
    if not kinds and cfg.get("full_attention_interval"):
        every = int(cfg["full_attention_interval"])
        kinds = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(layers)]
    n_linear = sum(1 for k in kinds if k == "linear_attention")
    key_dim = int(get("linear_num_key_heads", default=0) or 0) * int(get("linear_key_head_dim", default=0) or 0)
    value_dim = int(get("linear_num_value_heads", default=0) or 0) * int(get("linear_value_head_dim", default=0) or 0)
    return Shape(
        linear_attention_layers=n_linear,
        linear_qkv=2 * key_dim + value_dim,
        linear_v=value_dim,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=get("num_key_value_heads", "num_kv_heads", default=heads),
        head_dim=get("head_dim", default=hidden // heads) or hidden // heads,
        intermediate=inter,
        vocab=vocab,
        tied=bool(get("tie_word_embeddings", default=False)),
        experts=experts,
        active_experts=int(get("num_experts_per_tok", "moe_topk", default=0) or 0),
        shared_intermediate=shared,
        name=Path(str(cfg.get("_name_or_path") or cfg.get("model_type") or "model")).name or "model",
    )


@dataclass
class Row:
    """One method at one setting: GB by component and in total."""

    method: str
    checkpointing: bool
    weights: float
    adapter: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    trainable: int

    @property
    def total(self) -> float:
        return self.weights + self.adapter + self.gradients + self.optimizer + self.activations + self.overhead


@dataclass
class Plan:
    """The estimate for one model at one sequence length and batch size."""

    model: str
    params: int
    seq: int
    batch: int
    rank: int
    optimizer: str
    rows: list[Row] = field(default_factory=list)
    logits: str = "full"
    targets: str = "all-linear"
    kind: str = "dense"
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # per layer kind: layers, adapted layers, modules
    assumptions: list[str] = field(default_factory=list)

    def row(self, method: str, checkpointing: bool = True) -> Row:
        return next(r for r in self.rows if r.method == method and r.checkpointing == checkpointing)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for row, r in zip(d["rows"], self.rows):
            row["total"] = r.total
        return d


def activations(shape: Shape, seq: int, batch: int, *, checkpointing: bool, lora_dropout: bool, logits: str = "full") -> float:
    """Bytes of activations kept for the backward pass, logits included."""
    h, kv = shape.hidden, shape.kv_dim
    i_active = shape.intermediate * ((shape.active_experts or 1) if shape.experts else 1) + shape.shared_intermediate
    per_token_layer = 2 * (5 * h + 2 * kv + 4 * i_active)
    per_token_linear = 2 * (3 * h + 2 * shape.linear_qkv + 2 * shape.linear_v + 4 * i_active)
    if lora_dropout:  # one dropped-out copy of each adapted layer's input: q, k, v, o, gate, up (h) and down (i)
        per_token_layer += 2 * (6 * h + i_active)
        per_token_linear += 2 * (6 * h + i_active)
    tokens = seq * batch
    n_lin = shape.linear_attention_layers
    if checkpointing:
        kept = shape.layers * 2 * h * tokens + max(per_token_layer, per_token_linear if n_lin else 0) * tokens
    else:
        kept = ((shape.layers - n_lin) * per_token_layer + n_lin * per_token_linear) * tokens
    logit_tokens = min(tokens, CE_CHUNK) if logits == "chunked" else tokens
    return float(kept + logit_tokens * shape.vocab * 8)


@dataclass
class Built:
    """What the model built from its config on the meta device says: adapter, totals, targets."""

    trainable: int
    total: int
    quantizable: int  # linear weights (and fused expert weights) that NF4 stores in 4 bits
    targets: Any


def adapter_count(cfg: dict[str, Any], *, rank: int, targets: str | list[str], experts: bool, dropout: float) -> Built | None:
    """The LoRA parameters PEFT attaches to the targets resolved on the model built on the meta device.

    Raises WorkbenchError for a target that matches nothing; None when the config cannot be built
    here (an architecture this transformers lacks): the caller falls back on the formula.
    """
    memo = json.dumps([cfg, rank, targets, experts, dropout], sort_keys=True, default=str)
    if memo not in _BUILT:
        _BUILT[memo] = _build_and_count(cfg, rank=rank, targets=targets, experts=experts, dropout=dropout)
    return _BUILT[memo]


_BUILT: dict[str, Built | None] = {}  # a model's count does not change within a process


def _build_and_count(cfg: dict[str, Any], *, rank: int, targets: str | list[str], experts: bool, dropout: float) -> Built | None:
    try:
        import torch
        import transformers
    except ImportError:
        return None
    from workbench.recipe import LoraConfig
    from workbench.train import lora

    body = {k: v for k, v in cfg.items() if not k.startswith("_")}
    try:
        config = transformers.AutoConfig.for_model(body.pop("model_type"), **body)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
    except Exception:  # unknown or incomplete config: the formula applies
        return None
    total = sum(p.numel() for p in model.parameters())
    out_emb = model.get_output_embeddings()
    quantizable = sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not out_emb)
    quantizable += sum(p.numel() for n, p in model.named_parameters() if p.ndim == 3 and lora._in_experts(n + ".x"))
    t = lora.resolve(model, targets, experts=experts, probe=False)
    lc = LoraConfig(r=rank, alpha=rank, dropout=dropout, target_modules=targets, experts=experts)
    if not t.parameters:  # linear layers only: r * (in + out) each, what PEFT creates (importing and attaching it is slow)
        return Built(sum(rank * (m.in_features + m.out_features) for m in map(model.get_submodule, t.chosen)), total, quantizable, t)
    from peft import get_peft_model

    cfg_peft = lora.peft_config(lc, t)  # drops router parameters PEFT cannot adapt with dropout, as training does
    if not t.parameters:
        return Built(sum(rank * (m.in_features + m.out_features) for m in map(model.get_submodule, t.chosen)), total, quantizable, t)
    peft_model = get_peft_model(model, cfg_peft)
    return Built(sum(p.numel() for p in peft_model.parameters() if p.requires_grad), total, quantizable, t)


def estimate(
    config: str | Path | dict[str, Any],
    *,
    seq: int = 2048,
    batch: int = 1,
    rank: int = 16,
    methods: tuple[str, ...] = METHODS,
    optimizer: str = "adamw",
    double_quant: bool = True,
    lora_dropout: bool = True,
    targets: str | list[str] = "all-linear",
    experts: bool = False,
    logits: str = "full",
    build: bool = True,
) -> Plan:
    """Memory estimate, with and without gradient checkpointing, for each method (GB).

    ``targets``/``experts``: the LoRA targets as a recipe names them, resolved on the model built
    from the config on the meta device (``build=False``: by formula, every projection).
    ``logits``: ``full`` (PEFT + TRL) or ``chunked`` (Unsloth's fused cross-entropy).
    """
    if seq <= 0 or batch <= 0 or rank <= 0:
        raise WorkbenchError("--seq, --batch and --rank must be positive")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise WorkbenchError(f"unknown method {bad[0]!r}", "one of full, lora, qlora")
    if optimizer not in ("adamw", "adamw_8bit"):
        raise WorkbenchError(f"unknown optimizer {optimizer!r}", "adamw or adamw_8bit")
    if logits not in ("full", "chunked"):
        raise WorkbenchError(f"unknown logits mode {logits!r}", "full (PEFT + TRL) or chunked (Unsloth's fused cross-entropy)")
    cfg = read_config(config)
    shape = shape_of(cfg)
    counts = shape.counts()
    opt_bytes = 8 if optimizer == "adamw" else 2
    built = adapter_count(cfg, rank=rank, targets=targets, experts=experts, dropout=0.05 if lora_dropout else 0.0) if build and cfg.get("model_type") else None
    notes: list[str] = []
    if built is not None:
        lora_n, total, quantizable = built.trainable, built.total, built.quantizable
        notes.append(f"adapter: {lora_n:,} parameters at r={rank} on {_targets_text(targets)} as resolved on the model built from "
                     f"config.json (meta device, no weights): {built.targets.per_kind()}")  # fmt: skip
        notes += [n.removeprefix("warning: ") for n in built.targets.notes]
    else:
        lora_n, total = shape.lora_params(rank, experts=experts), counts["total"]
        quantizable = counts["linear"]
        notes.append(f"adapter: by formula, every attention and MLP projection at r={rank}"
                     + (" (routed experts excluded)" if shape.experts and not experts else "") + "; the config could not be built here")  # fmt: skip
    if shape.linear_attention_layers:
        notes.append(f"hybrid: {shape.linear_attention_layers} of {shape.layers} layers are linear attention, sized by their projection widths")
    logit_gb = seq * batch * shape.vocab * 8 / GB
    if logits == "full":
        notes.append(f"logits: full, {seq * batch:,} tokens x {shape.vocab:,} vocab x 8 bytes = {logit_gb:.1f} GB (PEFT + TRL); "
                     f"Unsloth's chunked cross-entropy holds {CE_CHUNK:,} tokens' worth ({min(seq * batch, CE_CHUNK) * shape.vocab * 8 / GB:.1f} GB)")  # fmt: skip
    else:
        notes.append(f"logits: chunked (Unsloth's fused cross-entropy), {CE_CHUNK:,} tokens at a time; PEFT + TRL hold all {seq * batch:,}: {logit_gb:.1f} GB")
    notes.append(f"optimizer: {optimizer} ({opt_bytes} bytes per trained parameter); QLoRA: NF4{' with double quantisation' if double_quant else ''} "
                 "for linear weights, 16-bit embeddings, lm_head and norms; 1 GB CUDA context and allocator slack")  # fmt: skip
    quant_const = (1 / 64 + 4 / (64 * 256)) if double_quant else 4 / 64
    plan = Plan(model=shape.name, params=total, seq=seq, batch=batch, rank=rank, optimizer=optimizer, logits=logits,
                targets=_targets_text(targets), kind=built.targets.kind if built else ("moe" if shape.experts else "dense"),
                by_kind=built.targets.by_kind if built else {}, assumptions=notes)  # fmt: skip
    for method in methods:
        for ckpt in (True, False):
            if method == "full":
                weights = 2.0 * total
                adapter, grads, opt, trained = 0.0, 2.0 * total, float(opt_bytes * total), total
            else:
                if method == "lora":
                    weights = 2.0 * total
                else:
                    weights = (0.5 + quant_const) * quantizable + 2.0 * (total - quantizable)
                adapter, grads, opt, trained = 4.0 * lora_n, 4.0 * lora_n, float(opt_bytes * lora_n), lora_n
            acts = activations(shape, seq, batch, checkpointing=ckpt, lora_dropout=lora_dropout and method != "full", logits=logits)
            plan.rows.append(Row(method, ckpt, weights / GB, adapter / GB, grads / GB, opt / GB, acts / GB, OVERHEAD / GB, trained))
    return plan


def _targets_text(targets: str | list[str]) -> str:
    return targets if isinstance(targets, str) else ", ".join(targets)


def for_recipe(recipe: Any, config: str | Path | dict[str, Any] | None = None, *, backend: str | None = None) -> Plan:
    """The estimate for what a recipe will run: its targets, rank, dropout, sequence length, batch,
    optimiser and quantisation; chunked logits when it trains with Unsloth (``backend``: unsloth or peft;
    default: unsloth when the recipe allows it, as on a CUDA machine with the gpu extra)."""
    t, lc = recipe.train, recipe.lora
    src = config if config is not None else recipe.model.name
    backend = backend or ("peft" if t.backend == "peft" else "unsloth")
    method = "qlora" if recipe.quant.load_in_4bit else "lora"
    return estimate(
        src, seq=recipe.model.max_length, batch=t.per_device_batch_size, rank=lc.r, methods=(method,),
        optimizer="adamw" if t.optimizer == "adamw_torch" else "adamw_8bit", double_quant=recipe.quant.double_quant,
        lora_dropout=lc.dropout > 0, targets=lc.target_modules, experts=lc.experts, logits="chunked" if backend == "unsloth" else "full",
    )  # fmt: skip
