"""How eval loads models: threads pinned and batches as training, a 4-bit base for QLoRA, vLLM's model args, template kwargs."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from workbench.eval import backends as be
from workbench.eval import run as ev

HELDOUT = [
    {"messages": [{"role": "user", "content": f"Question {i}: how many cups does Sam have?"},
                  {"role": "assistant", "content": f"Sam has {i * 7} cups.\n#### {i * 7}"}]}
    for i in range(1, 12)
]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("chatml")


def _adapter(model: Path, dest: Path, r: int = 4) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(model)
    get_peft_model(m, LoraConfig(r=r, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)).save_pretrained(dest)
    return dest


def test_batch_size_and_threads_default_as_training() -> None:
    assert be.resolve_batch_size(None, "cpu") == be.CPU_BATCH and be.resolve_batch_size(None, "cuda:0") == "auto"
    assert be.resolve_batch_size("8", "cpu") == 8 and be.resolve_batch_size("auto", "cuda") == "auto"
    assert be.resolve_threads(None, "cpu") == 1 and be.resolve_threads(None, "cuda") is None and be.resolve_threads(3, "cpu") == 3


def test_threads_are_pinned_for_the_block_and_restored() -> None:
    import torch

    before = torch.get_num_threads()
    with be.pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_batched_heldout_loss_equals_one_row_at_a_time(model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.eval import heldout as held

    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HELDOUT))
    convs = held.read(path)
    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir)
    one = held.loss(model, tok, convs, batch_size=1)
    many = held.loss(model, tok, convs, batch_size=4)  # padded batches of unequal lengths
    assert (many.rows, many.tokens) == (one.rows, one.tokens) == (len(HELDOUT), one.tokens)
    assert many.loss == pytest.approx(one.loss, rel=1e-5)


def test_evaluation_records_the_pinned_threads_and_batch(model_dir: Path, tmp_path: Path) -> None:
    import torch

    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HELDOUT))
    before = torch.get_num_threads()
    seen: list[int] = []
    real = be.hf_lm

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(torch.get_num_threads())  # the model is loaded and run inside the pinned block
        return real(*a, **kw)

    be.hf_lm, saved = spy, be.hf_lm
    try:
        res = ev.evaluate(model_dir, tasks=["heldout"], heldout=path, limit=3, gen_kwargs={"max_gen_toks": 4}, generations=1)
    finally:
        be.hf_lm = saved
    assert seen == [1] and torch.get_num_threads() == before
    assert res.settings["batch_size"] == be.CPU_BATCH and res.settings["threads"] == 1 and res.settings["load_in_4bit"] is False


def test_4bit_base_is_loaded_with_training_quantization(model_dir: Path, tmp_path: Path) -> None:
    from workbench.train.backend import _bnb_4bit_available

    if not _bnb_4bit_available(False):
        pytest.skip("bitsandbytes 4-bit is not available on this platform")
    adapter = _adapter(model_dir, tmp_path / "adapter")
    lm = be.hf_lm(str(model_dir), adapter, device="cpu", dtype="auto", batch_size=4, tokenizer=None, add_bos_token=None,
                  template_kwargs=None, load_in_4bit=True)  # fmt: skip
    kinds = {type(m).__name__ for m in lm.model.modules()}
    assert "Linear4bit" in kinds and type(lm.model).__name__.startswith("Peft")
    qc = lm.model.base_model.model.config.quantization_config
    qc = qc if isinstance(qc, dict) else qc.to_dict()
    assert qc["bnb_4bit_quant_type"] == "nf4" and qc["bnb_4bit_use_double_quant"] is True


def _run_dir(tmp: Path, model_dir: Path, *, quantized: bool, recipe_extra: str = "") -> Path:
    run = tmp / "run"
    _adapter(model_dir, run / "adapter")
    (run / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HELDOUT[:2]))
    (run / "recipe.yaml").write_text(f"name: x\nquant:\n  load_in_4bit: true\neval:\n  tasks: [heldout]\n{recipe_extra}")
    (run / "run.json").write_text(json.dumps({"model_path": str(model_dir), "quantized": quantized}))
    return run


@pytest.mark.parametrize(("quantized", "extra", "expect"), [(True, "", True), (False, "", False), (False, "  load_in_4bit: true\n", True)])
def test_eval_quantization_follows_what_training_applied(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          quantized: bool, extra: str, expect: bool) -> None:  # fmt: skip
    got: dict[str, Any] = {}

    def fake_pair(model: Any, adapter: Any, settings: ev.Settings, **kw: Any) -> list[Any]:
        got["s"] = settings
        raise SystemExit  # the settings are what is tested; no model is run

    monkeypatch.setattr(ev, "evaluate_pair", fake_pair)
    with pytest.raises(SystemExit):
        ev.evaluate_run(_run_dir(tmp_path, model_dir, quantized=quantized, recipe_extra=extra))
    s = got["s"]
    assert s.load_in_4bit is expect and s.threads is None and s.batch_size is None


def test_template_kwargs_reach_the_chat_template(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.template_kwargs (read where the recipe has the field) goes to lm-eval as chat_template_args."""
    from workbench import recipe as rc

    assert be.chat_kwargs({"enable_thinking": False}) == {"chat_template_args": {"enable_thinking": False}}
    assert be.chat_kwargs({"enable_thinking": True})["think_end_token"] == "</think>"  # the answer is read after the reasoning
    assert be.chat_kwargs(None) == {}
    got: dict[str, Any] = {}

    def fake_pair(model: Any, adapter: Any, settings: ev.Settings, **kw: Any) -> list[Any]:
        got["s"] = settings
        raise SystemExit

    monkeypatch.setattr(ev, "evaluate_pair", fake_pair)
    recipe = rc.from_dict({"name": "x", "eval": {"tasks": ["heldout"]}})
    object.__setattr__(recipe.model, "template_kwargs", {"enable_thinking": False})  # the field another part of the recipe adds
    with pytest.raises(SystemExit):
        ev.evaluate_run(_run_dir(tmp_path, model_dir, quantized=False), recipe=recipe)
    assert got["s"].template_kwargs == {"enable_thinking": False}


def test_vllm_serves_the_adapter_through_enable_lora(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12, "base_model_name_or_path": "/m"}))
    args = be.vllm_args("/models/base", adapter, dtype="auto", batch_size="auto", seed=7, load_in_4bit=True, tokenizer=None,
                        add_bos_token=None, template_kwargs={"enable_thinking": False, "tools": None}, max_gen_toks=512)  # fmt: skip
    assert args["enable_lora"] is True and args["lora_local_path"] == str(adapter.resolve())
    assert args["max_lora_rank"] == 16  # the smallest rank vLLM builds kernels for that holds r=12
    assert args["quantization"] == "bitsandbytes" and args["enable_thinking"] is False and args["chat_template_args"] == {"tools": None}
    assert "lora_local_path" not in be.vllm_args("/m", None, dtype="auto", batch_size=8, seed=1, load_in_4bit=False, tokenizer=None,
                                                  add_bos_token=None, template_kwargs=None)  # fmt: skip
    # every argument is one lm-eval's VLLM takes (read from the installed source: vllm itself is not installed here)
    import lm_eval

    src = Path(lm_eval.__file__).parent / "models" / "vllm_causallms.py"
    init = next(n for n in ast.walk(ast.parse(src.read_text())) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    params = {a.arg for a in init.args.args + init.args.kwonlyargs}
    assert set(args) - {"enable_lora"} <= params  # enable_lora goes on to vllm.LLM through **kwargs
    assert '"enable_lora": bool(lora_local_path)' in src.read_text()


def test_vllm_without_cuda_is_one_clear_error() -> None:
    import torch

    from workbench.errors import WorkbenchError

    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    with pytest.raises(WorkbenchError, match="needs a CUDA GPU"):
        be.vllm_lm({"pretrained": "/m"})
