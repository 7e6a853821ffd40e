"""LoRA: target modules resolved against the loaded model (per layer kind), and the PEFT config for each variant."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.recipe import LoraConfig

# Names of routers in MoE blocks (a Linear in older code, a TopKRouter module with a `weight` in transformers 5).
ROUTER_NAMES = ("gate", "router", "shared_expert_gate", "gate_network")
# Parameters of state-space (Mamba) mixers that must never carry an adapter.
SSM_PARAMS = ("A_log", "D", "dt_bias", "conv1d")
# Model types whose mixer out_proj PEFT refuses to adapt (peft.tuners.tuners_utils._check_lora_target_modules_mamba).
PEFT_MAMBA_TYPES = ("falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h")
# Fused expert weights (3-D parameters [experts, out, in]) in transformers 5 MoE blocks.
FUSED_EXPERT_PARAMS = ("gate_up_proj", "down_proj", "w1", "w2", "w3", "gate_proj", "up_proj")


@dataclass
class Targets:
    """What the adapter attaches to: Linear modules (PEFT target_modules) and bare parameters (target_parameters)."""

    modules: list[str]
    parameters: list[str] = field(default_factory=list)
    kind: str = "dense"  # dense | moe | hybrid | hybrid-moe
    linear: dict[str, int] = field(default_factory=dict)  # every linear layer's short name -> count
    matched: int = 0  # how many modules and parameters carry an adapter
    notes: list[str] = field(default_factory=list)
    # per layer kind (self_attn, linear_attn, mlp, mlp.experts, mamba, ...): layers holding it, layers
    # where it carries an adapter, and its linear layers by short name, all and adapted
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    chosen: list[str] = field(default_factory=list)  # full names of the adapted linear layers

    def describe(self) -> str:
        parts = ", ".join(self.modules) or "-"
        extra = f"; parameters {', '.join(self.parameters)}" if self.parameters else ""
        return f"{self.kind} model: {self.matched} targets ({parts}{extra})"

    def per_kind(self) -> str:
        """`self_attn 8/8 layers, linear_attn 0/24 layers, mlp 32/32 layers`: where adapters sit."""
        return ", ".join(f"{k} {d['adapted_layers']}/{d['layers']} layers" for k, d in self.by_kind.items())


def _is_linear(module: Any) -> bool:
    import torch

    if isinstance(module, torch.nn.Linear):  # bitsandbytes Linear4bit / Linear8bitLt subclass it
        return True
    return type(module).__name__ == "Conv1D"  # GPT-2 style transposed linear


def _pattern(name: str) -> str:
    return ".".join("N" if p.isdigit() else p for p in name.split("."))


def _in_experts(name: str) -> bool:
    parts = name.split(".")
    return any(p in ("experts", "expert") for p in parts[:-1])


def layer_kind(name: str) -> tuple[str, int | None]:
    """(kind, layer index) of a module: the block under the numbered decoder layer that holds it
    (`model.layers.3.linear_attn.in_proj_qkv` -> ("linear_attn", 3)); experts and shared experts apart."""
    parts = name.split(".")
    idx = next((i for i, p in enumerate(parts[:-1]) if p.isdigit()), None)
    if idx is None or idx + 1 >= len(parts) - 1:
        return "other", None
    kind = parts[idx + 1]
    rest = parts[idx + 2 : -1]
    if any(p in ("experts", "expert") for p in rest):
        kind += ".experts"
    elif any(p.startswith("shared_expert") for p in rest):
        kind += ".shared_expert"
    return kind, int(parts[idx])


def kinds_report(linear: dict[str, str], chosen: set[str], *, experts: bool) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per layer kind: how many layers hold it and how many of those carry an adapter; and a warning for
    each kind that some layers leave without any adapter (routed experts skipped by choice get a note)."""
    by: dict[str, dict[str, Any]] = {}
    layers: dict[str, set[int | None]] = {}
    covered: dict[str, set[int | None]] = {}
    for n in sorted(linear):
        kind, idx = layer_kind(n)
        short = n.rsplit(".", 1)[-1]
        d = by.setdefault(kind, {"layers": 0, "adapted_layers": 0, "linear": {}, "adapted": {}})
        d["linear"][short] = d["linear"].get(short, 0) + 1
        layers.setdefault(kind, set()).add(idx)
        if n in chosen:
            d["adapted"][short] = d["adapted"].get(short, 0) + 1
            covered.setdefault(kind, set()).add(idx)
    notes: list[str] = []
    for kind, d in by.items():
        d["layers"], d["adapted_layers"] = len(layers[kind]), len(covered.get(kind, set()))
        bare = d["layers"] - d["adapted_layers"]
        if not bare:
            continue
        missing = ", ".join(k for k in d["linear"] if k not in d["adapted"]) or ", ".join(d["linear"])
        if kind.endswith(".experts") and not experts:
            notes.append(f"routed experts not adapted ({kind} in {bare} layers; lora.experts: true adapts them)")
        else:
            notes.append(f"warning: {kind} has no adapter in {bare} of {d['layers']} layers ({missing} not targeted); "
                         "add them to lora.target_modules, or use all-linear")  # fmt: skip
    return dict(sorted(by.items())), notes


def scan(model: Any) -> dict[str, Any]:
    """The model's adaptable pieces: linear layers by full name, routers, fused experts, SSM mixers."""
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linear: dict[str, str] = {}  # full name -> role
    router_params: list[str] = []
    fused: list[str] = []
    hybrid = False
    moe = False
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if "A_log" in own or "Mamba" in type(module).__name__:
            hybrid = True
        if not name:
            continue
        short = name.rsplit(".", 1)[-1]
        if _is_linear(module):
            if module is out_emb or short == "lm_head":
                continue
            if _in_experts(name):
                linear[name], moe = "expert", True
            elif short in ROUTER_NAMES and "Router" not in type(module).__name__ and module.out_features <= 512 and _parent_has_experts(model, name):
                linear[name], moe = "router", True
            else:
                linear[name] = "dense"
            continue
        if "Router" in type(module).__name__ and "weight" in own:
            router_params.append(f"{name}.weight")
            moe = True
        elif short in ("experts", "expert") and any(p.ndim == 3 for p in own.values()):
            fused.extend(f"{name}.{pn}" for pn, p in own.items() if p.ndim == 3)
            moe = True
    kind = ("hybrid-moe" if moe else "hybrid") if hybrid else ("moe" if moe else "dense")
    return {"linear": linear, "router_params": router_params, "fused": fused, "kind": kind}


def _parent_has_experts(model: Any, name: str) -> bool:
    parent_name = name.rsplit(".", 1)[0]
    try:
        parent = model.get_submodule(parent_name)
    except AttributeError:
        return False
    return any(n in ("experts", "expert") for n, _ in parent.named_children())


def linear_names(model: Any) -> dict[str, int]:
    """Short names of the model's linear layers (lm_head excluded) with how many of each."""
    return dict(sorted(Counter(n.rsplit(".", 1)[-1] for n in scan(model)["linear"]).items()))


def resolve(model: Any, target_modules: str | Sequence[str] = "all-linear", *, experts: bool = False, probe: bool = True) -> Targets:
    """Resolve `all-linear` or a list of names against ``model.named_modules()``.

    Dense decoders get every projection; MoE models get attention, the router and shared experts,
    and the routed experts only with ``experts=True``; hybrid Mamba blocks get in/out/x/dt projections
    (never A_log, D or conv1d, which are not linear). A name that matches no linear layer is an error
    that lists the model's linear layers. With ``probe``, one 8-token forward pass finds layers whose
    weight the model's code reads directly, bypassing forward() (Jamba's dt_proj): an adapter there
    would never train, so they are left out, with a note.
    """
    info = scan(model)
    linear: dict[str, str] = info["linear"]
    counts = dict(sorted(Counter(n.rsplit(".", 1)[-1] for n in linear).items()))
    if isinstance(target_modules, str) and target_modules != "all-linear":
        target_modules = [target_modules]
    chosen: set[str]
    params: list[str] = []
    if target_modules == "all-linear":
        chosen = {n for n, role in linear.items() if role != "expert" or experts}
        params = list(info["router_params"]) + (list(info["fused"]) if experts else [])
    else:
        chosen = set()
        missing: list[str] = []
        for want in target_modules:
            hits = {n for n in linear if n == want or n.endswith("." + want) or ("." + _pattern(n)).endswith("." + want)}
            if not experts and not any(p in want for p in ("expert",)):
                hits = {n for n in hits if linear[n] != "expert"}
            phits = [p for p in info["router_params"] + info["fused"] if p.endswith("." + want) or p.rsplit(".", 1)[0].endswith("." + want)]
            if not hits and not phits:
                missing.append(want)
            chosen |= hits
            params += [p for p in phits if p not in params]
        if missing:
            raise WorkbenchError(
                f"lora.target_modules: {', '.join(missing)} matches no linear layer of this model",
                "its linear layers are: " + ", ".join(f"{k} ({v})" for k, v in counts.items()),
            )
    notes: list[str] = []
    if probe and chosen:
        skipped = bypassed(model, sorted(n for n in chosen if linear[n] != "expert"))
        if skipped:
            chosen -= set(skipped)
            shorts = sorted({n.rsplit(".", 1)[-1] for n in skipped})
            notes.append(f"not adapting {', '.join(shorts)} ({len(skipped)} layers): the model reads their weights directly, so an adapter would never train")
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in PEFT_MAMBA_TYPES:
        refused = sorted(n for n in chosen if n.rsplit(".", 1)[-1] == "out_proj")
        if refused:
            chosen -= set(refused)
            notes.append(f"not adapting out_proj ({len(refused)} layers): PEFT refuses LoRA on the mixer's out_proj of {model_type} models")
    if not chosen and not params:
        raise WorkbenchError("lora.target_modules selects nothing", "linear layers: " + ", ".join(counts))
    by_kind, kind_notes = kinds_report(linear, chosen, experts=experts)
    notes += kind_notes
    skipped_fused = [p for p in info["fused"] if p not in params]
    if skipped_fused and not experts:
        layers = len({layer_kind(p)[1] for p in skipped_fused})
        notes.append(f"routed experts not adapted ({len(skipped_fused)} fused expert weights in {layers} layers; lora.experts: true adapts them)")
    return Targets(
        modules=_compact(sorted(chosen), linear),
        parameters=_compact_params(sorted(params)),
        kind=info["kind"],
        linear=counts,
        matched=len(chosen) + len(params),
        notes=notes,
        by_kind=by_kind,
        chosen=sorted(chosen),
    )


def bypassed(model: Any, names: Sequence[str]) -> list[str]:
    """Which of these modules a short forward pass never calls (their weight is used some other way)."""
    import torch

    called: set[str] = set()
    hooks = []
    for name in names:
        mod = model.get_submodule(name)
        hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: called.add(name)))
    was_training = model.training
    model.train()  # eval mode would let bitsandbytes repack 4-bit weights for inference on CPU
    try:
        device = next(p.device for p in model.parameters())
        ids = torch.full((1, 8), 1, dtype=torch.long, device=device)
        with torch.no_grad():
            model(input_ids=ids)
    except Exception:  # a model that cannot run a bare forward here: trust the names
        return []
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [n for n in names if n not in called]


def _compact(chosen: list[str], linear: dict[str, str]) -> list[str]:
    """Short names where every layer of that name is chosen (what PEFT and Unsloth expect), full names otherwise."""
    by_short: dict[str, list[str]] = {}
    for n in linear:
        by_short.setdefault(n.rsplit(".", 1)[-1], []).append(n)
    picked = set(chosen)
    out: list[str] = []
    for short, names in sorted(by_short.items()):
        sel = [n for n in names if n in picked]
        if not sel:
            continue
        out.extend([short] if len(sel) == len(names) else sel)
    return out


def _compact_params(params: list[str]) -> list[str]:
    """`model.layers.3.mlp.gate.weight` -> `mlp.gate.weight` (PEFT matches target_parameters by suffix)."""
    out: list[str] = []
    for p in params:
        parts = p.split(".")
        idx = max((i for i, x in enumerate(parts) if x.isdigit()), default=-1)
        short = ".".join(parts[idx + 1 :])
        if short not in out:
            out.append(short)
    return out


def peft_config(cfg: LoraConfig, targets: Targets, *, quantized: bool = False) -> Any:
    """The PEFT LoraConfig for rank, alpha, dropout, DoRA, rsLoRA and the init scheme."""
    from peft import LoraConfig as PeftLoraConfig

    init: Any = True if cfg.init == "default" else cfg.init
    extra: dict[str, Any] = {}
    if cfg.init.startswith("pissa") and quantized:
        raise WorkbenchError("lora.init=pissa needs a 16-bit base", "set quant.load_in_4bit=false, or use init: default")
    if cfg.init == "loftq":
        if quantized:
            raise WorkbenchError("lora.init=loftq quantises the base itself", "set quant.load_in_4bit=false with init: loftq")
        from peft import LoftQConfig

        extra["loftq_config"] = LoftQConfig(loftq_bits=4)
    if targets.parameters and cfg.dropout > 0:
        # PEFT adapts bare parameters (transformers 5 routers, fused experts) only without dropout.
        if cfg.experts or cfg.target_modules != "all-linear":
            raise WorkbenchError(
                f"lora.dropout={cfg.dropout}: PEFT cannot adapt {', '.join(targets.parameters)} (bare parameters) with dropout",
                "set lora.dropout=0, or leave routers and experts out of lora.target_modules",
            )
        targets.notes.append(f"not adapting {', '.join(targets.parameters)}: PEFT adapts bare router parameters only with lora.dropout=0")
        targets.matched -= sum(1 for _ in targets.parameters)
        targets.parameters = []
    if cfg.use_dora and targets.parameters:
        raise WorkbenchError("DoRA cannot adapt routers or fused experts", "set lora.use_dora=false or list only linear target_modules")
    return PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets.modules,
        target_parameters=targets.parameters or None,
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        init_lora_weights=init,
        modules_to_save=cfg.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
        **extra,
    )


def trainable(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters); 4-bit weights count as their unpacked size."""
    train = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if p.requires_grad:
            train += n
    return train, total


def loraplus_optimizer(model: Any, *, lr: float, ratio: float, weight_decay: float, optim: str) -> Any:
    """LoRA+: B matrices at ``ratio`` times the learning rate of A (peft.optimizers.create_loraplus_optimizer)."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    cls: Any = torch.optim.AdamW
    if optim in ("adamw_8bit", "paged_adamw_8bit"):
        import bitsandbytes as bnb

        cls = bnb.optim.PagedAdamW8bit if optim.startswith("paged") else bnb.optim.AdamW8bit
    return create_loraplus_optimizer(model, cls, lr=lr, loraplus_lr_ratio=ratio, weight_decay=weight_decay)
