"""The Unsloth path's contract, checked without a GPU: imported before transformers, every LoRA option carried
(none dropped silently), pre-quantized 4-bit repos refused in 16-bit, its `-bnb-4bit` base rename accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import recipe as rc
from workbench.errors import WorkbenchError
from workbench.train import backend

REPO = Path(__file__).resolve().parent.parent
STUB = 'import sys\nsys.modules["__unsloth_saw__"] = type(sys)("x")\nsys.modules["__unsloth_saw__"].before = sorted(m for m in ("transformers", "trl", "peft") if m in sys.modules)\n'


def test_unsloth_is_imported_before_transformers_trl_and_peft(tmp_path: Path) -> None:
    (tmp_path / "unsloth").mkdir()
    (tmp_path / "unsloth" / "__init__.py").write_text(STUB)  # records what was imported before it
    code = (
        "import sys\nfrom workbench import recipe as rc\nfrom workbench.train import import_unsloth_first\n"
        "r = rc.from_dict({'train': {'backend': 'auto'}})\n"
        "assert import_unsloth_first(r, cuda=True)\n"
        "import transformers\nprint(sys.modules['__unsloth_saw__'].before)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip() == "[]"  # nothing it patches was loaded before it
    assert not backend.import_unsloth_first(rc.from_dict({"train": {"backend": "peft"}}), cuda=True)
    assert not backend.import_unsloth_first(rc.from_dict({}), cuda=False)  # no CUDA: never imported


def test_cli_train_and_run_ask_for_unsloth_before_importing_transformers() -> None:
    import ast
    import inspect

    from workbench import cli

    for fn in (cli.train, cli.run):
        body = inspect.getsource(fn)
        assert 0 < body.index("import_unsloth_first(r)") < body.index("from transformers"), fn.__name__
        ast.parse(body.strip())


def test_prequantized_repo_with_load_in_4bit_false_is_refused(tmp_path: Path) -> None:
    for name in ("unsloth/Qwen3.5-9B-Instruct-bnb-4bit", "unsloth/Llama-3.1-8B-Instruct-unsloth-bnb-4bit"):
        r = rc.from_dict({"model": {"name": name}, "quant": {"load_in_4bit": False}})
        with pytest.raises(WorkbenchError) as e:
            backend.check_quantization(r)
        assert "pre-quantized 4-bit" in e.value.message and "load_in_4bit: true" in (e.value.hint or "")
        backend.check_quantization(rc.from_dict({"model": {"name": name}, "quant": {"load_in_4bit": True}}))
    folder = tmp_path / "local-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}))
    with pytest.raises(WorkbenchError, match="pre-quantized"):
        backend.check_quantization(rc.from_dict({"model": {"name": str(folder)}}))
    backend.check_quantization(rc.from_dict({"model": {"name": "Qwen/Qwen3.5-9B-Instruct"}}))  # a 16-bit repo is fine


def test_unsloths_base_rename_names_the_same_model() -> None:
    assert backend.same_base("unsloth/Qwen3.5-9B-Instruct-bnb-4bit", "Qwen/Qwen3.5-9B-Instruct")
    assert backend.same_base("unsloth/qwen3.5-9b-instruct-unsloth-bnb-4bit", "/models/Qwen3.5-9B-Instruct/")
    assert not backend.same_base("unsloth/Qwen3.5-9B-Instruct-bnb-4bit", "Qwen/Qwen3.5-27B")


def test_eval_accepts_an_adapter_whose_base_unsloth_renamed(tmp_path: Path) -> None:
    from workbench.eval.run import check_adapter_base

    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "unsloth/Qwen3.5-9B-Instruct-bnb-4bit"}))
    check_adapter_base(tmp_path, "Qwen/Qwen3.5-9B-Instruct")
    with pytest.raises(WorkbenchError, match="was trained on"):
        check_adapter_base(tmp_path, "Qwen/Qwen3.5-27B")


def test_every_lora_option_reaches_unsloth(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from workbench.train import lora

    targets = lora.Targets(modules=["q_proj", "v_proj"], parameters=["mlp.gate.weight"])
    lc = rc.LoraConfig(r=8, alpha=16, dropout=0.0, use_dora=True, use_rslora=True, init="pissa_niter_4", modules_to_save=["lm_head"])
    kwargs, notes = backend.unsloth_peft_kwargs(lc, lora.peft_config(lc.model_copy(update={"use_dora": False}), targets))
    assert kwargs["init_lora_weights"] == "pissa_niter_4" and kwargs["use_rslora"] is True and kwargs["use_dora"] is True
    assert kwargs["target_parameters"] == ["mlp.gate.weight"] and kwargs["modules_to_save"] == ["lm_head"]
    assert kwargs["target_modules"] == ["q_proj", "v_proj"] and kwargs["r"] == 8 and kwargs["lora_alpha"] == 16
    assert notes and "DoRA" in notes[0]
    # the options PEFT refuses are refused on Unsloth's path too, since both go through peft_config
    with pytest.raises(WorkbenchError, match="pissa needs a 16-bit base"):
        lora.peft_config(rc.LoraConfig(init="pissa"), targets, quantized=True)
