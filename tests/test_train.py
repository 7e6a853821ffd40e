"""Training on the small local model, CPU: loss falls, labels are exactly the mask's, packing isolates
examples, checkpoints resume, early stopping stops, 4-bit NF4 trains, the run directory is complete."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from workbench import recipe as rc  # noqa: E402
from workbench.train import trainer as tr  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.records import Conversation, Message, Source  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model is built once per module, in a private cache."""
    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("WORKBENCH_CACHE", None)
    else:
        os.environ["WORKBENCH_CACHE"] = old


def convs(n: int, answer: str = "The answer is {n}. #### {n}", seed: int = 0, start: int = 0) -> list[Conversation]:
    out = []
    for i in range(start, start + n):
        q = f"Sam has {i % 97} cards and {i % 13} pens. How many cards does Sam have?"
        a = answer.format(n=i % 97)
        out.append(Conversation.make([Message("user", q), Message("assistant", a)], Source("synthetic", row=i)))
    return out


def make(tmp_path: Path, *overrides: str, **sections: Any) -> rc.Recipe:
    raw: dict[str, Any] = {
        "name": "t",
        "model": {"name": "tiny:chatml", "max_length": 128},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 6, "learning_rate": 1e-2, "per_device_batch_size": 4, "optimizer": "adamw_torch",
            "warmup_ratio": 0.0, "lr_scheduler": "constant", "threads": 1, "seed": 0,
        },
        "run_dir": str(tmp_path / "run"),
    }
    if os.environ.get("WORKBENCH_TEST_BACKEND"):  # bench/gpu_check.sh runs these tests under each backend
        raw["train"]["backend"] = os.environ["WORKBENCH_TEST_BACKEND"]
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return rc.from_dict(raw, overrides=list(overrides))


def test_a_real_run_lowers_the_loss_and_writes_the_run_directory(tmp_path: Path) -> None:
    events: list[Any] = []
    r = make(tmp_path, "train.max_steps=30", "train.eval_every=15")
    res = tr.train(r, prepared=convs(120), on_progress=events.append)
    assert res.steps == 30 and res.backend == "peft"
    losses = [x["loss"] for x in res.log if "loss" in x]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.5, (first, last)
    assert 0 < res.trainable_params < res.total_params
    out = res.run_dir
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/tokenizer_config.json",
                 "adapter/generation_config.json", "recipe.yaml", "run.json", "train_log.json", "loss.png", "dropped.jsonl"):
        assert (out / name).is_file(), name
    info = json.loads((out / "run.json").read_text())
    assert len(info["data_hash"]) == 32 and info["template_hash"] and info["versions"]["trl"]
    assert info["examples"]["train"] == 120
    log = json.loads((out / "train_log.json").read_text())
    assert [x["step"] for x in log if "loss" in x] == list(range(1, 31))
    assert all(x["tokens_per_s"] > 0 for x in log[1:] if "loss" in x)
    assert all("learning_rate" in x for x in log if "loss" in x)
    assert (out / "recipe.yaml").read_text().startswith("# workbench train ")
    assert rc.load(out / "recipe.yaml").lora.r == 8  # the resolved recipe reloads
    kinds = {e.kind for e in events}
    assert {"start", "step", "log", "message", "end"} <= kinds
    assert any("trainable parameters" in (e.message or "") for e in events)

    # the adapter loads with PEFT and changes the model; generation stops at the end-of-turn token
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = json.loads((out / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out / "adapter")
    tok = AutoTokenizer.from_pretrained(out / "adapter")
    gen = json.loads((out / "adapter" / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert tok.convert_tokens_to_ids("<|im_end|>") in eos
    assert model is not None


def loader_batch(tmp_path: Path, *overrides: str) -> tuple[Any, Any, tr.Prepared]:
    r = make(tmp_path, *overrides)
    plat = tr.detect(r)
    path = tr.model_path(r.model)
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    data = tr.prepare(r, tok, convs(24))
    model, _ = tr.load_model(r, path, plat)
    trainer = tr.build_trainer(r, model, tok, data, plat, tmp_path / "ck", [])
    return trainer, next(iter(trainer.get_train_dataloader())), data


def test_the_trainer_sees_exactly_the_mask_modules_labels(tmp_path: Path) -> None:
    from workbench.template.mask import render_and_mask
    from workbench.template.tokenizer import load_tokenizer

    trainer, batch, data = loader_batch(tmp_path)
    tok = load_tokenizer(tr.model_path(make(tmp_path).model))
    expected = {}
    for c in convs(24):
        rd = render_and_mask(tok, c).rendered
        expected[tuple(rd.input_ids)] = rd.labels
    # padding-free said outright (Unsloth enables it when unset, flattening the batch into one packed row)
    assert trainer.args.padding_free is False
    assert batch["input_ids"].shape[0] == 4
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        n = int(mask.sum())
        key = tuple(ids[:n].tolist())
        assert key in expected
        assert labels[:n].tolist() == expected[key]  # token for token, -100 included
        assert (labels[n:] == -100).all()


def test_packing_keeps_examples_apart(tmp_path: Path) -> None:
    trainer, batch, data = loader_batch(tmp_path, "train.packing=true")
    pos = batch["position_ids"][0]
    starts = (pos == 0).nonzero().flatten().tolist() + [pos.numel()]
    segs = [(a, b) for a, b in zip(starts, starts[1:])]
    assert len(segs) > 1 and "attention_mask" not in batch  # padding-free: one row, several examples
    rows = {tuple(r.input_ids): r.labels for r in data.train}
    for a, b in segs:  # each packed segment is one whole example with its labels
        seg = tuple(batch["input_ids"][0, a:b].tolist())
        assert seg in rows and batch["labels"][0, a:b].tolist() == rows[seg]
    model = trainer.model.eval()
    # fp32 on CPU: equal to 1e-4; bf16 on a GPU differs in the last bits from kernel to kernel, while a
    # leak between examples moves logits by ~0.5 (test_packing.py measures both)
    tol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 0.1
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for a, b in segs:
            alone = model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0]
            assert (packed[a:b].float() - alone.float()).abs().max() < tol, "an example attended to another"


class Stop(Exception):
    pass


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    r = make(tmp_path, "train.max_steps=8", "train.save_every=2", "train.save_total_limit=2")

    def crash(event: Any) -> None:
        if event.kind == "step" and event.step == 5:
            raise Stop

    with pytest.raises(Stop):
        tr.train(r, prepared=convs(40), on_progress=crash)
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith("checkpoint-"))
    assert ckpts == ["checkpoint-2", "checkpoint-4"]  # save_total_limit=2
    steps: list[int] = []
    res = tr.train(r, prepared=convs(40), resume=True, on_progress=lambda e: steps.append(e.step) if e.kind == "step" else None)
    assert steps == [5, 6, 7, 8] and res.steps == 8
    assert [x["step"] for x in res.log if "loss" in x] == list(range(1, 9))  # history carried over
    longer = make(tmp_path, "train.max_steps=10", "train.save_every=2")
    assert tr.train(longer, prepared=convs(40), resume=True).steps == 10


def test_resume_without_a_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no complete checkpoint to resume"):
        tr.train(make(tmp_path), prepared=convs(8), resume=True)


def test_early_stopping_when_eval_loss_rises(tmp_path: Path) -> None:
    # train answers one way, held-out data the opposite way: as training fits, eval loss climbs
    train_rows = convs(60, answer="yes yes yes yes")
    held = convs(8, answer="no no no no", start=300)
    r = make(tmp_path, "train.max_steps=40", "train.eval_every=2", "train.early_stopping_patience=2", "data.heldout=held.jsonl")
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tr.model_path(r.model))
    data = tr.prepare(r.model_copy(update={"data": r.data.model_copy(update={"heldout": None})}), tok, train_rows, held)
    res = tr.train(r, prepared=data)
    assert res.stopped_early and res.steps < 40
    evals = [x["eval_loss"] for x in res.log if "eval_loss" in x]
    assert len(evals) >= 3 and min(evals) < evals[-1]


def test_four_bit_nf4_path(tmp_path: Path) -> None:
    plat = tr.detect(make(tmp_path, "quant.load_in_4bit=true"))
    if not plat.quantize:
        pytest.skip("bitsandbytes cannot quantise to NF4 on this CPU: " + "; ".join(plat.notes))
    import warnings

    r = make(tmp_path, "quant.load_in_4bit=true", "train.max_steps=4", "train.eval_every=2")
    data = tr.Prepared(train=[], eval=[])
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tr.model_path(r.model))
    data = tr.prepare(r, tok, convs(16), convs(4, start=200))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = tr.train(r, prepared=data)
    # evaluating mid-run must not leave bitsandbytes' inference layout behind (no autograd through it)
    assert not [w for w in caught if "gemv_4bit" in str(w.message)]
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["quantized"] is True and res.steps == 4
    assert all(x["loss"] == x["loss"] for x in res.log if "loss" in x)  # finite
    cfg = json.loads((res.adapter_dir / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_recipe_data_is_ingested_masked_and_drops_counted(tmp_path: Path) -> None:
    demo = REPO / "data" / "demo" / "train.jsonl"
    if not demo.is_file():
        pytest.skip("data/demo not generated")
    r = make(tmp_path, f"data.sources=[{demo}]", "data.limit=40", "data.heldout=0.1", "train.max_steps=2")
    res = tr.train(r)
    info = json.loads((res.run_dir / "run.json").read_text())
    ex = info["examples"]
    dropped = sum(ex["dropped"].values())
    assert 30 <= ex["train"] <= 40 and ex["eval"] > 0  # data.limit=40, minus rows the mask step drops
    assert ex["train"] + ex["eval"] + dropped == ex["rows_in"]  # in = trained + held out + dropped (by reason)
    assert any(k.startswith("reject:") for k in ex["dropped"])
    lines = (res.run_dir / "dropped.jsonl").read_text().splitlines()
    assert len(lines) == dropped and all(json.loads(x)["reason"] for x in lines)


def test_demo_recipe_settings_fit_a_small_cpu() -> None:
    r = rc.load(REPO / "recipes" / "demo-cpu.yaml")
    assert r.model.name.startswith(("tiny:", "tiny-pretrained:")) and r.train.threads == 1 and (r.train.max_steps or 0) <= 800  # about 20 minutes on 2 busy cores


@pytest.mark.gpu
def test_unsloth_backend_on_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("unsloth")
    r = make(tmp_path, "train.backend=unsloth", "quant.load_in_4bit=true", "train.max_steps=3", "train.optimizer=adamw_8bit")
    res = tr.train(r, prepared=convs(16))
    assert res.backend == "unsloth" and res.steps == 3


@pytest.mark.gpu
def test_peft_qlora_on_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    r = make(tmp_path, "train.backend=peft", "quant.load_in_4bit=true", "train.max_steps=3", "train.optimizer=paged_adamw_8bit",
             "train.gradient_checkpointing=true")  # fmt: skip
    res = tr.train(r, prepared=convs(16))
    info = json.loads((res.run_dir / "run.json").read_text())
    assert res.backend == "peft" and res.steps == 3 and info["quantized"] is True and info["optimizer"] == "paged_adamw_8bit"


@pytest.mark.gpu
def test_hybrid_packing_refused_on_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    r = make(tmp_path, "train.packing=true", "train.max_steps=2", "model.tiny={arch: qwen3_5, layers: 4}")
    res = tr.train(r, prepared=convs(16))
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["packing"]["used"] is False and info["packing"]["refused"]


def test_generation_config_gains_the_end_of_turn_token(tmp_path: Path) -> None:
    from transformers import GenerationConfig

    from workbench.train import log as trainlog
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tr.model_path(make(tmp_path).model))
    im_end, eot_text = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert tr.end_of_turn_id(tok) == im_end

    class Model:  # a base whose generation_config stops only at <|endoftext|>
        generation_config = GenerationConfig(eos_token_id=eot_text)

    notes = trainlog.save_generation_config(Model(), tok, tmp_path, im_end)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert im_end in saved["eos_token_id"] and eot_text in saved["eos_token_id"]
    assert "<|im_end|>" in notes[0]


def test_cli_train_with_overrides(tmp_path: Path) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "workbench", "train", str(REPO / "recipes" / "demo-cpu.yaml"), "train.max_steps=2", "model.name=tiny:chatml",
         "train.eval_every=null", "data.limit=16", "--run-dir", str(tmp_path / "cli"), "--json", "--no-data-stages"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["steps"] == 2 and out["backend"] == "peft" and Path(out["adapter_dir"]).is_dir()
    bad = subprocess.run([sys.executable, "-m", "workbench", "train", str(REPO / "recipes" / "demo-cpu.yaml"), "lora.rr=4"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 1 and "lora.rr: unknown key" in bad.stderr and "Traceback" not in bad.stderr


def test_a_qwen35_thinking_template_trains_a_plain_dataset_end_to_end(tmp_path: Path) -> None:
    # Fact: a Qwen3.5-style thinking template writes "<think>\n\n</think>\n\n" before every last answer of a
    # plain row and its generation prompt opens "<think>\n". Every row still trains (none dropped for its
    # mask), each trains the empty block, the answer and <|im_end|>, and the adapter stops at <|im_end|>.
    template = REPO / "tests" / "data" / "templates" / "qwen3.5.jinja"
    r = make(tmp_path, f"model.template={template}", "train.max_steps=3")
    rows = convs(16) + [Conversation.make([Message("user", "Hi"), Message("assistant", "Hello.", "A greeting.")], Source("s", row=99))]
    res = tr.train(r, prepared=rows)
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["examples"]["train"] == 17 and sum(info["examples"]["dropped"].values()) == 0
    assert res.steps == 3
    from workbench.template.mask import render_and_mask
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tr.model_path(r.model), template=template)
    first = render_and_mask(tok, rows[0]).rendered
    assert tok.decode(first.input_ids[slice(*first.assistant_spans[0])]) == "<think>\n\n</think>\n\nThe answer is 0. #### 0<|im_end|>"
    thought = render_and_mask(tok, rows[-1]).rendered
    assert tok.decode(thought.input_ids[slice(*thought.assistant_spans[0])]) == "<think>\nA greeting.\n</think>\n\nHello.<|im_end|>"
    gen = json.loads((res.run_dir / "adapter" / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert tok.convert_tokens_to_ids("<|im_end|>") in eos
def test_heldout_fraction_is_taken_after_the_limit(tiny_tokenizer, tmp_path: Path) -> None:
    """`limit: 100, heldout: 0.1` holds out 10 of the 100 rows used, not 10% of the 1,000 in the source."""
    from workbench.train.data import limit_and_split, prepare

    rows = convs(1000)
    train, held, over = limit_and_split(rows, limit=100, heldout=0.1, seed=3)
    assert (len(train), len(held), len(over)) == (90, 10, 900)
    assert len({c.id for c in train + held + over}) == 1000  # every row in exactly one place
    assert limit_and_split(rows, limit=100, heldout=0.1, seed=3) == (train, held, over)  # seeded
    r = make(tmp_path, "data.limit=100", "data.heldout=0.1")
    got = prepare(r, tiny_tokenizer("chatml"), rows)
    assert len(got.eval) == 10 and len(got.train) + got.dropped.get("too_long", 0) + got.dropped.get("mask_problem", 0) == 90
    assert got.dropped["over_limit"] == 900 and got.rows_in == 1000


def test_resumed_run_sums_tokens_and_time_over_its_segments(tmp_path: Path) -> None:
    """run.json's tokens and duration cover every session of a resumed run, not only the last one."""
    whole = tr.train(make(tmp_path / "a", "train.max_steps=8"), prepared=convs(40))
    r = make(tmp_path / "b", "train.max_steps=8", "train.save_every=2")

    def crash(event: Any) -> None:
        if event.kind == "step" and event.step == 5:
            raise Stop

    with pytest.raises(Stop):
        tr.train(r, prepared=convs(40), on_progress=crash)
    res = tr.train(r, prepared=convs(40), resume=True)
    info = json.loads((tmp_path / "b" / "run" / "run.json").read_text())
    assert whole.tokens > 0 and res.tokens == whole.tokens == info["tokens"]  # steps 1-4 from the first session, 5-8 from the second
    assert info["segments"] == 2 and json.loads((tmp_path / "a" / "run" / "run.json").read_text())["segments"] == 1
    per_record = sum(x.get("seconds", 0) for x in res.log)
    assert info["duration_s"] == pytest.approx(per_record, abs=0.2) and per_record > 0


def test_early_stopping_reports_the_restored_best_eval_loss(tmp_path: Path) -> None:
    train_rows = convs(60, answer="yes yes yes yes")
    held = convs(8, answer="no no no no", start=300)
    r = make(tmp_path, "train.max_steps=40", "train.eval_every=2", "train.early_stopping_patience=2", "data.heldout=held.jsonl")
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tr.model_path(r.model))
    data = tr.prepare(r.model_copy(update={"data": r.data.model_copy(update={"heldout": None})}), tok, train_rows, held)
    res = tr.train(r, prepared=data)
    evals = [x["eval_loss"] for x in res.log if "eval_loss" in x]
    assert res.stopped_early and evals[-1] > min(evals)
    assert res.eval_loss == pytest.approx(min(evals))  # the weights saved are the best checkpoint's, and so is the figure
    assert json.loads((tmp_path / "run" / "run.json").read_text())["eval_loss_from"] == "best checkpoint (restored)"
