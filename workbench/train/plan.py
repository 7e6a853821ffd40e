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
  Logits: batch x seq x vocab x 8 (bf16 logits, their fp32 upcast for the loss, and its gradient share).
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

    def lora_params(self, r: int) -> int:
        """Adapter parameters with rank ``r`` on every attention and MLP projection (experts' MLPs included)."""
        h, i, q = self.hidden, self.intermediate, self.heads * self.head_dim
        attn = r * (h + q) * 2 + r * (h + self.kv_dim) * 2
        mlp_paths = (self.experts or 1) + (1 if self.shared_intermediate else 0)
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
    return Shape(
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

    def row(self, method: str, checkpointing: bool = True) -> Row:
        return next(r for r in self.rows if r.method == method and r.checkpointing == checkpointing)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for row, r in zip(d["rows"], self.rows):
            row["total"] = r.total
        return d


def activations(shape: Shape, seq: int, batch: int, *, checkpointing: bool, lora_dropout: bool) -> float:
    """Bytes of activations kept for the backward pass, logits included."""
    h, kv = shape.hidden, shape.kv_dim
    i_active = shape.intermediate * ((shape.active_experts or 1) if shape.experts else 1) + shape.shared_intermediate
    per_token_layer = 2 * (5 * h + 2 * kv + 4 * i_active)
    if lora_dropout:  # one dropped-out copy of each adapted layer's input: q, k, v, o, gate, up (h) and down (i)
        per_token_layer += 2 * (6 * h + i_active)
    tokens = seq * batch
    if checkpointing:
        kept = shape.layers * 2 * h * tokens + per_token_layer * tokens
    else:
        kept = shape.layers * per_token_layer * tokens
    logits = tokens * shape.vocab * 8
    return float(kept + logits)


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
) -> Plan:
    """Memory estimate, with and without gradient checkpointing, for each method (GB)."""
    if seq <= 0 or batch <= 0 or rank <= 0:
        raise WorkbenchError("--seq, --batch and --rank must be positive")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise WorkbenchError(f"unknown method {bad[0]!r}", "one of full, lora, qlora")
    if optimizer not in ("adamw", "adamw_8bit"):
        raise WorkbenchError(f"unknown optimizer {optimizer!r}", "adamw or adamw_8bit")
    shape = shape_of(read_config(config))
    counts = shape.counts()
    opt_bytes = 8 if optimizer == "adamw" else 2
    lora_n = shape.lora_params(rank)
    quant_const = (1 / 64 + 4 / (64 * 256)) if double_quant else 4 / 64
    plan = Plan(model=shape.name, params=counts["total"], seq=seq, batch=batch, rank=rank, optimizer=optimizer)
    for method in methods:
        for ckpt in (True, False):
            if method == "full":
                weights = 2.0 * counts["total"]
                adapter, grads, opt, trained = 0.0, 2.0 * counts["total"], opt_bytes * counts["total"], counts["total"]
            else:
                if method == "lora":
                    weights = 2.0 * counts["total"]
                else:
                    weights = (0.5 + quant_const) * counts["linear"] + 2.0 * (counts["embeddings"] + counts["norms"])
                adapter, grads, opt, trained = 4.0 * lora_n, 4.0 * lora_n, float(opt_bytes * lora_n), lora_n
            acts = activations(shape, seq, batch, checkpointing=ckpt, lora_dropout=lora_dropout and method != "full")
            plan.rows.append(Row(method, ckpt, weights / GB, adapter / GB, grads / GB, opt / GB, acts / GB, OVERHEAD / GB, trained))
    return plan
