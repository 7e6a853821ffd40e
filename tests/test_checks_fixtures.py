"""workbench check against real tokenizers and vendor chat templates (../shared/fixtures): the known facts come out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import run_cli
from workbench.checks.run import run_checks
from workbench.records import Finding

SYSTEM = {"role": "system", "content": "Be brief."}
TURN1 = [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "2 plus 3 is 5."}]
TURN2 = [{"role": "user", "content": "And 10 plus 20?"}, {"role": "assistant", "content": "10 plus 20 is 30."}]
ONE, MULTI = TURN1, TURN1 + TURN2
ROWS = [ONE, MULTI, [SYSTEM, *ONE], [SYSTEM, *MULTI]]


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def by_code(report, code: str) -> Finding:
    hits = [f for f in report.findings if f.code == code]
    assert len(hits) == 1, sorted(codes(report))
    return hits[0]


def ids(rows: list[list[dict]]) -> list[str]:
    from workbench.checks.run import _as_rows

    return sorted(set(_as_rows(rows)[1]))


@pytest.fixture(scope="module")
def qwen(fixtures_dir: Path):
    from workbench.template.tokenizer import load_tokenizer

    return load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")


def template(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / "templates" / name).read_text(encoding="utf-8")


def test_qwen25_default_system_prompt_and_consistent_stop_tokens(qwen) -> None:
    report = run_checks(qwen, ROWS)
    f = by_code(report, "hidden_system_prompt")
    assert f.data["default_system"].startswith("You are Qwen, created by Alibaba Cloud")
    assert f.example_ids == ids(ROWS[:2])  # rows that bring their own system turn keep it
    # eos <|im_end|>, config.json [151645], generation_config [151645, 151643]: all stop where turns end.
    assert codes(report) == {"hidden_system_prompt"}
    t = report.facts["template"]
    assert t["end_of_turn"] == "<|im_end|>" and t["stop_ids"]["generation_config.json eos_token_id"] == [151645, 151643]


def test_trl_generation_tags_agree_with_the_derivation_on_qwen25(qwen, fixtures_dir: Path) -> None:
    import copy

    trl = copy.deepcopy(qwen)
    trl.chat_template = template(fixtures_dir, "trl-qwen2_5_training.jinja")
    tagged = run_checks(trl, ROWS)
    plain = run_checks(qwen, ROWS)
    assert tagged.facts["template"]["generation_tags"] is True
    assert tagged.facts["derivations"] == {"generation_tags": 4} and plain.facts["derivations"] == {"diff": 4}
    assert not codes(tagged) & {"mask_disagreement", "mask_unverified", "eot_not_trained"}
    # the tags also train the "\n" before each answer and the one after its <|im_end|>: two tokens a turn
    turns = sum(1 for r in ROWS for m in r if m["role"] == "assistant")
    assert tagged.facts["trained_tokens"] == plain.facts["trained_tokens"] + 2 * turns


def test_qwen3_template_is_not_prefix_preserving(qwen, fixtures_dir: Path) -> None:
    import copy

    qwen3 = copy.deepcopy(qwen)
    qwen3.chat_template = template(fixtures_dir, "Qwen-Qwen3-0.6B.jinja")
    thought = [TURN1[0], {"role": "assistant", "content": "<think>\n2 and 3 make 5\n</think>\n\n5."}, *TURN2]
    report = run_checks(qwen3, [thought, MULTI])
    f = by_code(report, "not_prefix_preserving")
    # Both rows: as the last turn an answer gets a <think> block (an empty one when it has no
    # reasoning); once a later user turn follows, the block is gone.
    assert f.example_ids == ids([thought, MULTI])
    example = f.data["examples"][0]  # the row with reasoning
    assert example["message"] == 1 and "2 and 3 make 5" in example["turn_render"] and "<think>" not in example["full_render"]


@pytest.mark.parametrize(
    ("family", "name", "bos"),
    [("llama3", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>"), ("gemma", "google-gemma-2-2b-it.jinja", "<bos>")],
)
def test_llama31_and_gemma2_double_bos_when_retokenized(tiny_model_dir, fixtures_dir: Path, family: str, name: str, bos: str) -> None:
    # The vendor templates write `bos_token` themselves. The tiny llama3/gemma families carry exactly
    # those BOS tokens (<|begin_of_text|>, <bos>) as specials and add them on encode, as the real
    # Llama-3.1 and gemma-2 tokenizers do; the fixtures hold no such tokenizer (llama2's BOS is <s>).
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir(family, model=False), template=fixtures_dir / "templates" / name)
    report = run_checks(tok, [ONE, MULTI])
    f = by_code(report, "double_bos_retokenized")
    assert f.data["bos"] == bos
    assert "double_bos" not in codes(report)  # apply_chat_template(tokenize=True) adds none of its own
    assert not codes(report) & {"eot_not_trained", "mask_unverified", "generation_prompt_mismatch"}


def test_llama31_template_on_a_llama2_sentencepiece_tokenizer(tmp_path: Path, fixtures_dir: Path) -> None:
    # The SentencePiece model alone adds no BOS; a tokenizer_config with add_bos_token makes it a
    # Llama-2 tokenizer. The Llama-3.1 template then writes <s> (its bos_token) and the tokenizer adds
    # another, and its <|eot_id|> is no token of this vocabulary at all.
    from workbench.template.tokenizer import load_tokenizer

    shutil.copy(fixtures_dir / "tokenizers" / "llama2" / "tokenizer.model", tmp_path)
    assert "no_chat_template" in codes(run_checks(load_tokenizer(tmp_path), [ONE]))
    config = {"add_bos_token": True, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(tmp_path, template=fixtures_dir / "templates" / "meta-llama-Llama-3.1-8B-Instruct.jinja")
    report = run_checks(tok, [ONE])
    assert by_code(report, "double_bos_retokenized").data["bos"] == "<s>"
    assert by_code(report, "multi_token_eot").data["marker"] == "<|eot_id|>"
    assert "eot_not_trained" in codes(report)


def test_gemma2_rejects_system_turns_and_unalternating_roles(tiny_model_dir, fixtures_dir: Path) -> None:
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir("gemma", model=False), template=fixtures_dir / "templates" / "google-gemma-2-2b-it.jinja")
    twice = [TURN1[0], TURN1[0], TURN1[1]]
    report = run_checks(tok, [*ROWS, twice])
    unsupported = by_code(report, "system_unsupported")
    assert unsupported.example_ids == ids(ROWS[2:]) and "System role not supported" in unsupported.message
    assert by_code(report, "roles_not_alternating").example_ids == ids([twice])
    assert report.rendered == 2


def test_mistral_nemo_moves_the_system_prompt(fixtures_dir: Path) -> None:
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(
        fixtures_dir / "tokenizers" / "mistral-v3", template=fixtures_dir / "templates" / "mistralai-Mistral-Nemo-Instruct-2407.jinja"
    )
    report = run_checks(tok, ROWS)
    moved = by_code(report, "system_prompt_moved")
    # Only the user turn that is the last message gets it: never a training render (it ends with the
    # assistant), always the inference prompt. Every row with a system turn is affected.
    assert moved.data == {"training": "absent", "inference": "later"}
    assert moved.example_ids == ids(ROWS[2:])
    assert by_code(report, "generation_prompt_mismatch").example_ids == ids(ROWS[2:])


def test_phi3_gguf_turns_end_where_generation_does_not_stop(fixtures_dir: Path) -> None:
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(fixtures_dir / "tokenizers" / "phi-3" / "ggml-vocab-phi-3.gguf")
    report = run_checks(tok, ROWS)
    stop = by_code(report, "eot_not_stop")
    assert "'<|end|>' (32007)" in stop.message and "'<|endoftext|>' (32000)" in stop.message
    assert stop.severity == "warning"  # a lone GGUF: no generation_config.json to say otherwise
    assert by_code(report, "pad_is_eos").severity == "info"  # pad is <|endoftext|>, turns end with <|end|>
    assert by_code(report, "system_dropped").example_ids == ids(ROWS[2:])  # this template ignores system turns
    assert "double_bos_retokenized" in codes(report)


def test_cli_on_gsm8k_with_qwen25(tmp_path: Path, fixtures_dir: Path) -> None:
    rows = (fixtures_dir / "data" / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    model = str(fixtures_dir / "tokenizers" / "qwen2.5")

    res = run_cli("check", str(data), "--model", model)
    assert res.returncode == 0, res.stderr  # a warning only: passes at the default --fail-on error
    assert "hidden_system_prompt" in res.stdout and "You are Qwen" in res.stdout

    res = run_cli("check", str(data), "--model", model, "--max-length", "160", "--fail-on", "warning", "--json")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert report["rows"] == 40 and report["rows_read"] == 40
    found = {f["code"]: f for f in report["findings"]}
    assert len(found["hidden_system_prompt"]["example_ids"]) == 40
    assert found["over_max_length"]["data"]["share_lost"] > 0
    assert "Traceback" not in res.stderr

