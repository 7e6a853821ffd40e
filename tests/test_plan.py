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
    moe = {**LLAMA2_7B, "num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 14336, "num_key_value_heads": 8}
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
