"""Packing isolates examples only where every token-mixing layer is attention: on hybrid (Gated DeltaNet) and
SSM (Mamba) models the second packed example's logits differ from running it alone, so packing is refused there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("trl")

from tests.test_train import convs, make  # noqa: E402
from workbench.train import trainer as tr  # noqa: E402
from workbench.train.packing import packing_refusal, recurrent_mixers  # noqa: E402

torch.set_num_threads(1)
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)


def build(kind: str) -> Any:
    T = transformers
    configs = {
        "llama": lambda: T.LlamaConfig(**SMALL),
        "qwen3_5": lambda: T.Qwen3_5TextConfig(**SMALL, head_dim=16, linear_key_head_dim=16, linear_value_head_dim=16,
                                               linear_num_key_heads=2, linear_num_value_heads=4),  # fmt: skip
        "mamba": lambda: T.MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=256, state_size=8),
        "mamba2": lambda: T.Mamba2Config(hidden_size=64, num_hidden_layers=2, vocab_size=256, state_size=8, num_heads=8, head_dim=16,
                                         n_groups=1, chunk_size=16),  # fmt: skip
    }
    torch.manual_seed(0)
    return T.AutoModelForCausalLM.from_config(configs[kind]()).eval()


def leak(model: Any) -> float:
    """Max |logit difference| of a second example packed after a first (position ids restarting) vs run alone."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(3, 250, (1, 10), generator=g), torch.randint(3, 250, (1, 7), generator=g)
    pos = torch.cat([torch.arange(10), torch.arange(7)])[None]
    with torch.no_grad():  # use_cache=False: a training forward, where transformers reads packing from position ids
        packed = model(input_ids=torch.cat([a, b], 1), position_ids=pos, use_cache=False).logits[0, 10:]
        alone = model(input_ids=b, use_cache=False).logits[0]
    return float((packed - alone).abs().max())


@pytest.mark.parametrize("kind", ["llama", "qwen3_5", "mamba", "mamba2"])
def test_packing_is_refused_exactly_where_packed_examples_leak(kind: str) -> None:
    model = build(kind)
    delta, why = leak(model), packing_refusal(model)
    if kind == "llama":
        assert delta < 1e-4 and why is None  # attention only: the block-diagonal mask isolates examples
        return
    assert delta > 1e-3  # the second example sees the first through the recurrent state
    assert why is not None and "train.packing is off" in why and "training unpacked" in why
    mixers = recurrent_mixers(model)
    expect = {"qwen3_5": {"Qwen3_5GatedDeltaNet": 3}, "mamba": {"MambaMixer": 2}, "mamba2": {"Mamba2Mixer": 2}}[kind]
    assert mixers == expect
    n = sum(expect.values())
    assert f"{n} of {4 if kind == 'qwen3_5' else 2} layers" in why


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("WORKBENCH_CACHE", None)
    else:
        os.environ["WORKBENCH_CACHE"] = old


@pytest.mark.parametrize("arch", ["qwen3_5", "mamba2"])
def test_recipe_packing_on_a_hybrid_model_trains_unpacked_and_says_so(tmp_path: Path, arch: str, cache: Any) -> None:
    r = make(tmp_path, "train.packing=true", "train.max_steps=2", f"model.tiny={{arch: {arch}, layers: 4}}")
    plat = tr.detect(r)
    path = tr.model_path(r.model)
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    model, _ = tr.load_model(r, path, plat)
    assert packing_refusal(model) is not None
    messages: list[str] = []
    res = tr.train(r, prepared=convs(24), on_progress=lambda e: messages.append(e.message) if e.kind == "message" else None)
    assert res.steps == 2 and any("train.packing is off" in m for m in messages)
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["packing"]["requested"] is True and info["packing"]["used"] is False and "leak" in info["packing"]["refused"]
    # the batches the trainer sees hold one example per row, padded: no packed row
    data = tr.prepare(r, tok, convs(24))
    trainer = tr.build_trainer(r, model, tok, data, plat, tmp_path / "ck", [], packing=False if packing_refusal(model) else None)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" in batch and batch["input_ids"].shape[0] == 4
