"""The memory estimate: a 7B model lands where published measurements put it; configs of every shape read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.train import plan
from workbench.errors import WorkbenchError

LLAMA2_7B = {
    "model_type": "llama",
    "_name_or_path": "Llama-2-7b-hf",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


def test_llama2_7b_parameter_count() -> None:
    p = plan.estimate(LLAMA2_7B)
    assert 6.7e9 < p.params < 6.8e9  # Llama-2-7B has 6.74B


def test_llama2_7b_lands_in_the_published_ranges() -> None:
    # The usual reference setting: Alpaca-length sequences (512), batch 1, AdamW, no checkpointing.
    p = plan.estimate(LLAMA2_7B, seq=512, batch=1)
    assert 70 <= p.row("full", False).total <= 100
    assert 18 <= p.row("lora", False).total <= 24
    assert 6 <= p.row("qlora", False).total <= 10
    # Gradient checkpointing only ever saves memory; QLoRA at 2k tokens still fits a 10 GB budget.
    for m in plan.METHODS:
        assert p.row(m, True).total < p.row(m, False).total
    long = plan.estimate(LLAMA2_7B, seq=2048, batch=1)
    assert 6 <= long.row("qlora", True).total <= 10
    assert 70 <= long.row("full", True).total <= 100


def test_components_scale_as_they_should() -> None:
    a = plan.estimate(LLAMA2_7B, seq=1024, batch=1)
    b = plan.estimate(LLAMA2_7B, seq=1024, batch=4)
    assert b.row("lora", False).activations == pytest.approx(4 * a.row("lora", False).activations)
    assert b.row("lora", False).weights == a.row("lora", False).weights
    q, l = a.row("qlora", True), a.row("lora", True)
    assert 3.5 < q.weights < 4.2  # NF4 + double quant, embeddings and lm_head in 16-bit
    assert q.adapter == l.adapter and q.trainable == l.trainable
    r64 = plan.estimate(LLAMA2_7B, rank=64).row("lora", True).trainable
    assert r64 == 4 * plan.estimate(LLAMA2_7B, rank=16).row("lora", True).trainable
    eight = plan.estimate(LLAMA2_7B, optimizer="adamw_8bit").row("full", True)
    assert eight.optimizer == pytest.approx(a.row("full", True).optimizer / 4)


def test_moe_config_counts_every_expert_and_activates_top_k() -> None:
    moe = {**LLAMA2_7B, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 14336,
           "num_key_value_heads": 8}
    dense = {**moe, "num_local_experts": 0}
    pm, pd = plan.estimate(moe), plan.estimate(dense)
    assert 45e9 < pm.params < 48e9  # Mixtral-8x7B: 46.7B
    assert pm.row("full", False).activations > pd.row("full", False).activations


def test_reads_folders_and_nested_text_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x", "text_config": LLAMA2_7B}))
    assert plan.estimate(tmp_path).params == plan.estimate(LLAMA2_7B).params
    with pytest.raises(WorkbenchError, match="no config.json"):
        plan.estimate(tmp_path / "nope")
    with pytest.raises(WorkbenchError, match="lacks hidden_size"):
        plan.estimate({"model_type": "bert"})


def test_cli_plan_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    res = subprocess.run(
        [sys.executable, "-m", "workbench", "plan", "--model", str(tmp_path), "--method", "qlora", "--seq", "2048", "--batch", "4", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["seq"] == 2048 and d["batch"] == 4 and {r["method"] for r in d["rows"]} == {"qlora"}
    assert all(r["total"] > 0 for r in d["rows"])


QWEN3_8B = {"model_type": "qwen3", "_name_or_path": "Qwen3-8B", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False}
QWEN3_30B_A3B = {"model_type": "qwen3_moe", "_name_or_path": "Qwen3-30B-A3B", "hidden_size": 2048, "intermediate_size": 6144,
                 "moe_intermediate_size": 768, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
                 "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936, "tie_word_embeddings": False}


def test_dense_qwen3_8b_r32_all_linear_has_the_known_trainable_count() -> None:
    assert plan.estimate(QWEN3_8B, rank=32).row("qlora").trainable == 87_293_952


def test_moe_plan_counts_only_the_targets_the_recipe_resolves() -> None:
    p = plan.estimate(QWEN3_30B_A3B, rank=32)
    # attention only (the router is a bare parameter PEFT skips with dropout; experts are skipped by default):
    # per layer r * ((h + q) + (h + kv) * 2 + (q + h)) with h=2048, q=32*128, kv=4*128
    h, q, kv = 2048, 4096, 512
    assert p.row("qlora").trainable == 48 * 32 * ((h + q) + 2 * (h + kv) + (q + h))
    every_expert = plan.shape_of(QWEN3_30B_A3B).lora_params(32, experts=True)
    assert every_expert > 40 * p.row("qlora").trainable  # what counting every routed expert would have claimed
    assert p.kind == "moe" and "routed experts not adapted" in " ".join(p.assumptions)
    assert p.by_kind["self_attn"] == {"layers": 48, "adapted_layers": 48, "linear": dict.fromkeys(["k_proj", "o_proj", "q_proj", "v_proj"], 48),
                                      "adapted": dict.fromkeys(["k_proj", "o_proj", "q_proj", "v_proj"], 48)}


def qwen35_9b(tmp_path: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text(json.dumps(transformers.Qwen3_5TextConfig().to_dict()))  # the Qwen3.5-9B-style defaults
    return tmp_path


def test_the_seeds_qwen35_recipe_plans_as_the_seed_expects(tmp_path: Path) -> None:
    from workbench import recipe as rc

    r = rc.load(Path(__file__).resolve().parent.parent / "recipes" / "qwen3.5-9b-metamath-qlora.yaml")
    p = plan.for_recipe(r, qwen35_9b(tmp_path))
    row = p.row("qlora", True)
    assert p.kind == "hybrid" and p.logits == "chunked" and p.targets == "all-linear"
    assert row.trainable == 86_556_672  # every linear layer, the 24 Gated DeltaNet layers' projections included
    assert p.by_kind["linear_attn"]["adapted_layers"] == 24 and p.by_kind["self_attn"]["adapted_layers"] == 8
    assert not [a for a in p.assumptions if "no adapter" in a]
    assert 10 < row.total <= 16  # the recipe's "~16 GB" with Unsloth's chunked cross-entropy
    full = plan.for_recipe(r, tmp_path, backend="peft").row("qlora", True)
    assert full.total - row.total > 10  # 8,192 tokens x 248,320 vocab of logits held at once without chunking
    assert any("16.3 GB" in a for a in plan.for_recipe(r, tmp_path, backend="peft").assumptions)
    seven = plan.estimate(tmp_path, rank=32, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert seven.row("qlora").trainable == 58_195_968 and any("linear_attn has no adapter in 24 of 24 layers" in a for a in seven.assumptions)


def test_cli_plan_with_a_recipe_prints_targets_and_assumptions(tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "qwen3.5-9b-metamath-qlora.yaml"
    res = subprocess.run([sys.executable, "-m", "workbench", "plan", "--recipe", str(recipe), "--model", str(qwen35_9b(tmp_path))],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "linear_attn" in res.stdout and "24/24" in res.stdout and "chunked logits" in res.stdout
    assert "logits: chunked" in res.stderr and "meta device" in res.stderr
    missing = subprocess.run([sys.executable, "-m", "workbench", "plan"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--model" in missing.stderr
