"""workbench.train.pretrain: the demo base trains from scratch, its loss falls, it reloads as a plain HF model, and it is cached."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.train import pretrain
from workbench.errors import WorkbenchError

REPO = Path(__file__).resolve().parent.parent
SMALL = {"hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1, "intermediate": 64}
DOCS = [
    "Sam has 439 cups. Ana has 12 pens. How many cups does Sam have? Sam has 439 cups.",
    "Lee owns 57 books. Tom owns 801 kites.\nQ: How many kites does Tom have?\nA: 801",
    "The receipt shows a total of 64 dollars.\n#### 64",
]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(DOCS * 4) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("pre") / "base"
    seen: list[dict] = []
    pretrain.pretrain_base(out, corpus=small_corpus, steps=40, batch_size=4, model=SMALL, on_progress=seen.append)
    return out, seen


def test_loss_falls_and_marker_records_the_run(trained: tuple[Path, list[dict]]) -> None:
    out, seen = trained
    assert [d["step"] for d in seen] == list(range(1, 41))
    assert sum(d["loss"] for d in seen[-5:]) < 0.6 * sum(d["loss"] for d in seen[:5])
    info = pretrain.cached(out)
    assert info is not None and info["steps_done"] == 40 and info["documents"] == 12
    assert info["last_loss"] < info["first_loss"]


def test_output_loads_as_a_plain_model(trained: tuple[Path, list[dict]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = trained
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] > prompt["input_ids"].shape[1]
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]


def test_same_options_are_cached_and_new_ones_retrain(tmp_path: Path, small_corpus: Path) -> None:
    out = pretrain.pretrain_base(tmp_path / "base", corpus=small_corpus, steps=5, batch_size=4, model=SMALL)
    weights = (out / "model.safetensors").read_bytes()
    calls: list[dict] = []
    assert pretrain.pretrain_base(out, corpus=small_corpus, steps=5, batch_size=4, model=SMALL, on_progress=calls.append) == out
    assert calls == []  # nothing trained
    pretrain.pretrain_base(out, corpus=small_corpus, steps=3, batch_size=4, model=SMALL, on_progress=calls.append)
    assert len(calls) == 3 and pretrain.cached(out)["steps_done"] == 3  # type: ignore[index]
    assert (out / "model.safetensors").read_bytes() != weights


def test_training_is_deterministic(tmp_path: Path, small_corpus: Path) -> None:
    a = pretrain.pretrain_base(tmp_path / "a", corpus=small_corpus, steps=5, batch_size=4, model=SMALL)
    b = pretrain.pretrain_base(tmp_path / "b", corpus=small_corpus, steps=5, batch_size=4, model=SMALL)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert pretrain.cached(a)["hash"] == pretrain.cached(b)["hash"]  # type: ignore[index]


def test_refuses_a_foreign_folder_and_an_empty_corpus(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n\n")
    with pytest.raises(WorkbenchError, match="not made by workbench pretrain"):
        pretrain.pretrain_base(tmp_path / "theirs", corpus=empty, steps=1, model=SMALL)
    with pytest.raises(WorkbenchError, match="no documents"):
        pretrain.pretrain_base(tmp_path / "new", corpus=empty, steps=1, model=SMALL)


def test_a_spent_time_budget_stops_training_and_says_so(tmp_path: Path, small_corpus: Path) -> None:
    out = pretrain.pretrain_base(tmp_path / "b", corpus=small_corpus, steps=50, seconds_budget=0, batch_size=4, model=SMALL)
    info = pretrain.cached(out)
    assert info is not None and info["steps_done"] == 0 and info["last_loss"] is None


def test_answer_spans_cover_every_answer_form() -> None:
    doc = ("Sam has 439 cups. Ana has 12 pens.\nQ: How many pens does Ana have?\nA: 12\n"
           "How many cups does Sam have? Sam has 439 cups. How many pens does Ana have? Ana has 12 pens.")
    assert [doc[slice(*m.span(1))].strip() for m in pretrain.ANSWER_SPAN.finditer(doc)] == [
        "", "12", "Sam has 439 cups.", "Ana has 12 pens."]
    assert pretrain.ANSWER_SPAN.search("Total: 64\n#### 64").group(1) == " 64"  # type: ignore[union-attr]


def test_end_of_turn_starts_as_end_of_text(trained: tuple[Path, list[dict]]) -> None:
    from transformers import AutoModelForCausalLM

    out, _ = trained
    emb = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight
    assert emb[2].tolist() == emb[0].tolist()  # <|im_end|> == <|endoftext|> in the tiny chatml vocabulary


def test_default_dir_is_per_family_and_model_options_under_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    a, b, c = pretrain.default_dir("chatml"), pretrain.default_dir("llama3"), pretrain.default_dir("chatml", {"hidden": 64})
    assert len({a, b, c}) == 3 and all(p.parent == tmp_path / "pretrained" for p in (a, b, c))
    assert a == pretrain.default_dir("chatml") and a.name.startswith("chatml-")


def test_document_end_is_end_of_text_not_end_of_turn() -> None:
    assert pretrain.doc_end_token("chatml") == "<|endoftext|>"
    assert pretrain.doc_end_token("llama3") == "<|end_of_text|>"
    assert pretrain.doc_end_token("mistral") == "</s>"


def test_shipped_corpus_is_the_generators_output_and_holds_no_scored_item(tmp_path: Path) -> None:
    shipped = REPO / pretrain.CORPUS_NAME
    out = tmp_path / "reading.txt"
    subprocess.run([sys.executable, str(REPO / "data" / "make_corpus.py"), "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == shipped.read_bytes()
    assert shipped.stat().st_size < 2_000_000
    text = shipped.read_text(encoding="utf-8")
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    assert not re.search(r"have\?[^\n]*\n?[^\n]*\n#### ", text)  # the marker never follows a story
    scored = []
    for name in ("heldout.jsonl", "eval.jsonl"):
        for line in (REPO / "data" / "demo" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            answer = row["messages"][-1]["content"] if "messages" in row else row["answer"]
            scored.append(answer.split("\n")[0])
    assert scored and not any(fact in text for fact in scored)
