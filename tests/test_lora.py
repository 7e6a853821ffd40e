"""LoRA targets resolved on dense, MoE and hybrid models; each variant configured; adapters merged exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from workbench.train import lora, merging  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.recipe import LoraConfig  # noqa: E402

torch.set_num_threads(1)
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
DENSE = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def build(kind: str) -> Any:
    T = transformers
    configs = {
        "llama": lambda: T.LlamaConfig(**SMALL),
        "qwen2_moe": lambda: T.Qwen2MoeConfig(**SMALL, moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2),
        "mixtral": lambda: T.MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2),
        "jamba": lambda: T.JambaConfig(
            **SMALL, num_experts=2, expert_layer_period=2, expert_layer_offset=1, attn_layer_period=2, attn_layer_offset=1,
            mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        ),
        "bamba": lambda: T.BambaConfig(**SMALL, mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=8, mamba_chunk_size=16, attn_layer_indices=[1]),
    }
    torch.manual_seed(0)
    return T.AutoModelForCausalLM.from_config(configs[kind]())


def adapted(model: Any, targets: lora.Targets, **kw: Any) -> Any:
    return peft.get_peft_model(model, lora.peft_config(LoraConfig(r=4, alpha=8, **kw), targets))


def forward_backward(model: Any) -> None:
    ids = torch.randint(3, 250, (1, 12))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def adapted_names(model: Any) -> set[str]:
    return {n.split(".lora_A")[0].removeprefix("base_model.model.") for n, _ in model.named_parameters() if ".lora_A." in n}


def test_dense_decoder_gets_all_seven_projections() -> None:
    m = build("llama")
    t = lora.resolve(m, "all-linear")
    assert t.kind == "dense" and t.modules == DENSE and not t.parameters
    assert t.matched == 14 and "lm_head" not in t.linear
    pm = adapted(m, t)
    assert {n.rsplit(".", 1)[-1] for n in adapted_names(pm)} == set(DENSE)
    forward_backward(pm)


def test_explicit_list_and_missing_name_lists_the_linear_layers() -> None:
    m = build("llama")
    assert lora.resolve(m, ["q_proj", "v_proj"]).modules == ["q_proj", "v_proj"]
    with pytest.raises(WorkbenchError) as e:
        lora.resolve(m, ["q_proj", "query_key_value"])
    assert "query_key_value matches no linear layer" in e.value.message
    assert "q_proj (2)" in (e.value.hint or "") and "down_proj (2)" in (e.value.hint or "")


@pytest.mark.parametrize("kind", ["qwen2_moe", "mixtral"])
def test_moe_adapts_attention_router_and_shared_experts_not_routed_experts(kind: str) -> None:
    m = build(kind)
    t = lora.resolve(m, "all-linear")
    assert t.kind == "moe"
    assert t.parameters == ["mlp.gate.weight"]  # the router (a TopKRouter parameter in transformers 5)
    assert not any("experts" in p for p in t.parameters)
    if kind == "qwen2_moe":  # shared expert MLP and its gate
        assert {"gate_proj", "up_proj", "down_proj", "shared_expert_gate"} <= set(t.modules)
    pm = adapted(m, t, dropout=0.0)  # PEFT adapts bare parameters only without dropout
    names = adapted_names(pm)
    assert any(n.endswith("mlp.gate") for n in names) and not any("experts" in n for n in names)
    forward_backward(pm)
    with_experts = lora.resolve(build(kind), "all-linear", experts=True)
    assert {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"} <= set(with_experts.parameters)
    forward_backward(adapted(build(kind), with_experts, dropout=0.0, experts=True))


def test_moe_router_with_dropout_is_skipped_with_a_note_or_refused_when_asked_for() -> None:
    t = lora.resolve(build("mixtral"), "all-linear")
    lora.peft_config(LoraConfig(dropout=0.05), t)
    assert t.parameters == [] and any("mlp.gate.weight" in n for n in t.notes)
    t2 = lora.resolve(build("mixtral"), "all-linear", experts=True)
    with pytest.raises(WorkbenchError, match="cannot adapt"):
        lora.peft_config(LoraConfig(dropout=0.05, experts=True), t2)


@pytest.mark.parametrize("kind", ["jamba", "bamba"])
def test_hybrid_mamba_blocks_get_projections_never_ssm_parameters(kind: str) -> None:
    m = build(kind)
    t = lora.resolve(m, "all-linear")
    assert t.kind.startswith("hybrid")
    assert {"in_proj", "out_proj", "q_proj", "o_proj"} <= set(t.modules)
    if kind == "jamba":
        # Jamba's mixer reads dt_proj.weight directly (unless quantised): the probe finds that and skips it
        assert "x_proj" in t.modules and "dt_proj" not in t.modules
        assert "dt_proj" in t.notes[0]
        assert "dt_proj" in lora.resolve(m, "all-linear", probe=False).modules
    pm = adapted(m, t)
    names = adapted_names(pm)
    assert not any(x in n.rsplit(".", 1)[-1] for n in names for x in ("A_log", "D", "conv1d"))
    assert any(n.endswith("mamba.in_proj") for n in names)
    forward_backward(pm)
    for bad in ("conv1d", "A_log"):
        with pytest.raises(WorkbenchError, match=f"{bad} matches no linear layer"):
            lora.resolve(m, [bad])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.train import tiny

    return tiny.build(tmp_path_factory.mktemp("tiny") / "chatml", "chatml")


def load(tiny_dir: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)


def logits(model: Any, ids: Any) -> Any:
    model.eval()  # no LoRA dropout
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_variants_dora_rslora_pissa(tiny_dir: Path) -> None:
    ids = torch.randint(10, 500, (1, 16))
    base_out = logits(load(tiny_dir), ids)
    t = lora.resolve(load(tiny_dir), "all-linear")

    dora = adapted(load(tiny_dir), t, use_dora=True)
    assert any("lora_magnitude_vector" in n for n, _ in dora.named_parameters())

    rs = adapted(load(tiny_dir), t, use_rslora=True)
    q = rs.base_model.model.model.layers[0].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(8 / math.sqrt(4))

    pissa = adapted(load(tiny_dir), t, init="pissa")
    qa = pissa.base_model.model.model.layers[0].self_attn.q_proj
    assert qa.lora_B["default"].weight.abs().sum() > 0  # principal singular vectors, not zeros
    assert torch.allclose(logits(pissa, ids), base_out, atol=1e-4)  # the residual keeps the output


def test_loraplus_gives_b_a_larger_learning_rate(tiny_dir: Path) -> None:
    m = adapted(load(tiny_dir), lora.resolve(load(tiny_dir), "all-linear"))
    opt = lora.loraplus_optimizer(m, lr=1e-4, ratio=16, weight_decay=0.0, optim="adamw_torch")
    lrs = sorted({g["lr"] for g in opt.param_groups if g["params"]})
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(16e-4)


def perturbed_adapter(tiny_dir: Path, dest: Path, seed: int) -> Path:
    m = adapted(load(tiny_dir), lora.resolve(load(tiny_dir), "all-linear"))
    torch.manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    m.save_pretrained(dest)
    return dest


def test_merge_equals_the_adapter_and_keeps_stop_tokens(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import GenerationConfig

    a = perturbed_adapter(tiny_dir, tmp_path / "a", 1)
    GenerationConfig(eos_token_id=[2, 0], pad_token_id=0).save_pretrained(a)
    ids = torch.randint(10, 500, (1, 16))
    want = logits(peft.PeftModel.from_pretrained(load(tiny_dir), a), ids)
    out = merging.merge([a], tmp_path / "merged", dtype="float32")
    merged = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged, ids), want, atol=1e-4)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [2, 0]
    assert (out / "tokenizer_config.json").is_file()  # from the base, since the adapter has none


def hand_deltas(adapter: Path) -> dict[str, Any]:
    """Each adapted layer's weight delta, computed by hand from the saved factors: (alpha / r) * B @ A."""
    from safetensors.torch import load_file

    cfg = json.loads((adapter / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    w = load_file(str(adapter / "adapter_model.safetensors"))
    out = {}
    for k, a in w.items():
        if ".lora_A." in k:
            name = k.split(".lora_A.")[0].removeprefix("base_model.model.")
            out[name] = scale * w[k.replace(".lora_A.", ".lora_B.")].double() @ a.double()
    return out


def weight_deltas(merged_dir: Path, tiny_dir: Path) -> dict[str, Any]:
    merged = dict(transformers.AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).named_parameters())
    base = dict(load(tiny_dir).named_parameters())
    return {n.removesuffix(".weight"): (merged[n].double() - base[n].double()) for n in base if n.endswith("proj.weight")}


def test_linear_merge_is_exactly_the_weighted_sum_of_the_adapters_deltas(tiny_dir: Path, tmp_path: Path) -> None:
    a, b = perturbed_adapter(tiny_dir, tmp_path / "a", 1), perturbed_adapter(tiny_dir, tmp_path / "b", 2)
    out = merging.merge([a, b], tmp_path / "m", weights=[0.7, 0.3], combination="linear", dtype="float32")
    da, db, got = hand_deltas(a), hand_deltas(b), weight_deltas(out, tiny_dir)
    assert set(da) == set(got) and len(got) == 14
    for name, d in got.items():
        want = 0.7 * da[name] + 0.3 * db[name]
        assert torch.allclose(d, want, atol=1e-6), name  # W_merged - W_base = sum_i w_i (alpha/r) B_i A_i
    # PEFT's own `linear` adds the factors (cross terms B_a A_b): not the sum of the deltas
    pa = peft.PeftModel.from_pretrained(load(tiny_dir), a, adapter_name="a")
    pa.load_adapter(b, adapter_name="b")
    pa.add_weighted_adapter(["a", "b"], [0.7, 0.3], "w", combination_type="linear")
    q = pa.base_model.model.model.layers[0].self_attn.q_proj
    factor = q.get_delta_weight("w").double()
    want = 0.7 * da["model.layers.0.self_attn.q_proj"] + 0.3 * db["model.layers.0.self_attn.q_proj"]
    assert float((factor - want).norm() / want.norm()) > 0.1
    text = (out / "mergekit.yaml").read_text()
    assert "merge_method: task_arithmetic" in text and "weight: 0.7" in text and f"+{a.resolve()}" in text


@pytest.mark.parametrize("combination", ["ties", "dare_ties", "magnitude_prune"])
def test_ties_and_dare_work_on_the_full_deltas(tiny_dir: Path, tmp_path: Path, combination: str) -> None:
    from peft.utils import merge_utils

    a, b = perturbed_adapter(tiny_dir, tmp_path / "a", 1), perturbed_adapter(tiny_dir, tmp_path / "b", 2)
    out = merging.merge([a, b], tmp_path / "m", weights=[0.7, 0.3], combination=combination, density=0.5, dtype="float32")
    da, db, got = hand_deltas(a), hand_deltas(b), weight_deltas(out, tiny_dir)
    w = torch.tensor([0.7, 0.3], dtype=torch.float64)
    for name, d in got.items():
        assert torch.count_nonzero(d) > 0
        if combination == "dare_ties":  # random drops: the delta is made of the adapters' entries, rescaled
            continue
        want = getattr(merge_utils, combination)([da[name], db[name]], w, density=0.5)
        assert torch.allclose(d, want, atol=1e-5), name
    again = merging.merge([a, b], tmp_path / "m2", weights=[0.7, 0.3], combination=combination, density=0.5, dtype="float32")
    assert (out / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()  # seeded: reproducible
    assert f"merge_method: {'task_arithmetic' if combination == 'magnitude_prune' else combination}" in (out / "mergekit.yaml").read_text()


def test_dare_at_full_density_is_the_linear_merge(tiny_dir: Path, tmp_path: Path) -> None:
    a, b = perturbed_adapter(tiny_dir, tmp_path / "a", 1), perturbed_adapter(tiny_dir, tmp_path / "b", 2)
    lin = weight_deltas(merging.merge([a, b], tmp_path / "l", weights=[0.6, 0.4], dtype="float32"), tiny_dir)
    dare = weight_deltas(merging.merge([a, b], tmp_path / "d", weights=[0.6, 0.4], combination="dare_linear", density=1.0,
                                       dtype="float32"), tiny_dir)  # fmt: skip
    assert all(torch.allclose(lin[n], dare[n], atol=1e-6) for n in lin)


def test_unsloth_4bit_base_name_needs_a_16bit_base(tiny_dir: Path, tmp_path: Path) -> None:
    a = perturbed_adapter(tiny_dir, tmp_path / "a", 1)
    cfg = json.loads((a / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "unsloth/Qwen3.5-9B-Instruct-bnb-4bit"  # what Unsloth records after its 4-bit swap
    (a / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(WorkbenchError) as e:
        merging.merge([a], tmp_path / "m")
    assert "pre-quantized 4-bit" in e.value.message and "qwen3.5-9b-instruct" in (e.value.hint or "")
    assert merging.resolve_base([a], "Qwen/Qwen3.5-9B-Instruct") == "Qwen/Qwen3.5-9B-Instruct"  # the same model, 16-bit
    with pytest.raises(WorkbenchError, match="not the base the adapters were trained on"):
        merging.resolve_base([a], "meta-llama/Llama-3.1-8B-Instruct")


def test_merge_errors(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no adapter_config.json"):
        merging.merge([tmp_path], tmp_path / "m")
    a = perturbed_adapter(tiny_dir, tmp_path / "a", 1)
    with pytest.raises(WorkbenchError, match="unknown combination"):
        merging.merge([a, a], tmp_path / "m", combination="avg")
    with pytest.raises(WorkbenchError, match="1 weights for 2 adapters"):
        merging.merge([a, a], tmp_path / "m", weights=[1.0])


SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def qwen35(layers: int = 8) -> Any:
    cfg = transformers.Qwen3_5TextConfig(**{**SMALL, "num_hidden_layers": layers}, head_dim=16, linear_key_head_dim=16,
                                         linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4)  # fmt: skip
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(cfg)


def test_hybrid_layers_left_without_adapters_are_warned_with_counts() -> None:
    # Qwen3.5-style: full attention every 4th layer, Gated DeltaNet linear attention in the other 3 of 4
    seven = lora.resolve(qwen35(), SEVEN)
    assert seven.by_kind["linear_attn"] == {
        "layers": 6, "adapted_layers": 0, "adapted": {},
        "linear": {"in_proj_a": 6, "in_proj_b": 6, "in_proj_qkv": 6, "in_proj_z": 6, "out_proj": 6},
    }
    assert seven.by_kind["self_attn"]["adapted_layers"] == 2 and seven.by_kind["mlp"]["adapted_layers"] == 8
    warning = [n for n in seven.notes if n.startswith("warning: linear_attn")]
    assert warning and "no adapter in 6 of 6 layers" in warning[0] and "in_proj_qkv" in warning[0]
    assert "linear_attn 0/6 layers" in seven.per_kind()
    everything = lora.resolve(qwen35(), "all-linear")
    assert not [n for n in everything.notes if n.startswith("warning")]
    assert {"in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj"} <= set(everything.modules)
    assert all(d["adapted_layers"] == d["layers"] for d in everything.by_kind.values())
    pm = adapted(qwen35(), everything)
    assert any(n.endswith("linear_attn.in_proj_qkv") for n in adapted_names(pm))
    forward_backward(pm)


def test_routed_experts_skipped_by_choice_get_a_note_not_a_warning() -> None:
    t = lora.resolve(build("qwen2_moe"), "all-linear")
    assert not [n for n in t.notes if n.startswith("warning")]
    assert any(n.startswith("routed experts not adapted (4 fused expert weights in 2 layers") for n in t.notes)
    only_attn = lora.resolve(build("llama"), ["q_proj", "v_proj"])
    assert any(n.startswith("warning: mlp has no adapter in 2 of 2 layers") for n in only_attn.notes)
