"""workbench check on the model families people fine-tune now (../shared/fixtures and tests/data/templates):
reasoning templates (Qwen3/3.5, QwQ, DeepSeek-R1, gpt-oss), injected headers and dates, TRL's training
templates. Each test names the fact it asserts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_checks_fixtures import MULTI, ONE, SYSTEM, TURN1, TURN2, by_code, codes, ids
from tests.test_cli import run_cli
from workbench.checks.run import run_checks

DATA = Path(__file__).parent / "data" / "templates"
THOUGHT = [TURN1[0], {**TURN1[1], "reasoning_content": "Two and three make five."}]
THOUGHT2 = [*THOUGHT, TURN2[0], {**TURN2[1], "reasoning_content": "Ten and twenty make thirty."}]
R1_TOKENS = {"specials": ["<｜User｜>", "<｜Assistant｜>"], "eos": "<｜end▁of▁sentence｜>", "bos": "<｜begin▁of▁sentence｜>"}
HARMONY = {"specials": ["<|start|>", "<|message|>", "<|channel|>", "<|end|>", "<|return|>", "<|call|>"], "eos": "<|return|>"}


@pytest.fixture(scope="module")
def qwen3(fixtures_dir: Path):
    from workbench.template.tokenizer import load_tokenizer

    return load_tokenizer(fixtures_dir / "tokenizers" / "qwen3")


def family(tok, template: Path | None = None, *, specials=(), eos: str | None = None, bos: str | None = None):
    """The Qwen2 BPE with another family's special tokens and template, as the real checkpoints pair them
    (DeepSeek-R1-Distill-Qwen and gpt-oss-style tokens on a Qwen vocabulary)."""
    import copy

    t = copy.deepcopy(tok)
    extra = {"additional_special_tokens": list(specials)} if specials else {}
    if eos:
        extra["eos_token"] = eos
    if bos:
        extra["bos_token"] = bos
    if extra:
        t.add_special_tokens(extra)
    if template is not None:
        t.chat_template = template.read_text(encoding="utf-8")
    return t


def model_dir(tmp_path: Path, tok) -> Path:
    """config.json and generation_config.json that stop where this template's turns end."""
    folder = tmp_path / "configs"
    folder.mkdir(exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        (folder / name).write_text(json.dumps({"eos_token_id": [tok.eos_token_id]}))
    return folder


def trained(tok, conv) -> list[str]:
    from workbench.template import mask

    r = mask.render_and_mask(tok, conv)
    assert r.problems == [], r.problems
    return [tok.decode(r.rendered.input_ids[a:b]) for a, b in r.rendered.assistant_spans]


ERRORS = {"eot_not_trained", "no_trained_tokens", "mask_unverified", "generation_prompt_mismatch", "render_error"}


def test_qwen3_plain_row_checks_clean_and_trains_the_empty_think_block(qwen3, fixtures_dir: Path) -> None:
    # Fact: Qwen3-0.6B's template writes "<think>\n\n</think>\n\n" before the last answer of a row without
    # reasoning. The model writes that block itself after the "<|im_start|>assistant\n" prompt (Qwen3's
    # non-thinking form), so it is trained, as TRL's qwen3_training trains it: template text, not a mismatch.
    tok = family(qwen3, fixtures_dir / "templates" / "Qwen-Qwen3-0.6B.jinja")
    report = run_checks(tok, [ONE])
    assert not report.fails("error") and codes(report) == {"template_text_trained"}
    text = by_code(report, "template_text_trained")
    assert text.severity == "info" and "'<think>\\n\\n</think>\\n\\n' before the answer" in text.message
    assert trained(tok, ONE) == ["<think>\n\n</think>\n\n2 plus 3 is 5.<|im_end|>"]
    # with reasoning, the block holds it; earlier turns lose theirs (their text is counted)
    assert trained(tok, THOUGHT2)[-1] == "<think>\nTen and twenty make thirty.\n</think>\n\n10 plus 20 is 30.<|im_end|>"
    dropped = by_code(run_checks(tok, [THOUGHT2]), "reasoning_dropped")
    assert dropped.data["turns"] == 1 and dropped.data["tokens"] == len(tok.encode("Two and three make five."))
    assert "before the last user message" in dropped.message and "6 reasoning tokens" in dropped.message


def test_qwen3_thinking_2507_prompt_opens_think_that_history_turns_lack(qwen3) -> None:
    # Fact: the qwen3 fixture carries Qwen3-4B-Thinking-2507's template: its generation prompt is
    # "<|im_start|>assistant\n<think>\n", history turns are "<|im_start|>assistant\n" + answer. Every turn is
    # found (earlier ones too), the reasoning block is trained whole (never half of it), and rows without
    # reasoning get one warning that names the cause instead of mask errors.
    assert qwen3.get_chat_template().rstrip().endswith("{{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}")
    assert trained(qwen3, MULTI) == ["2 plus 3 is 5.<|im_end|>", "<think>\n\n</think>\n\n10 plus 20 is 30.<|im_end|>"]
    assert trained(qwen3, THOUGHT) == ["<think>\nTwo and three make five.\n</think>\n\n2 plus 3 is 5.<|im_end|>"]
    report = run_checks(qwen3, [ONE, MULTI, THOUGHT, THOUGHT2])
    assert not codes(report) & ERRORS and not report.fails("error")
    opens = by_code(report, "generation_prompt_opens_reasoning")
    assert opens.example_ids == ids([ONE, MULTI]) and "'<think>\\n'" in opens.message and "closes it empty" in opens.message


def test_qwen35_template_enable_thinking_false_is_checked_clean(qwen3) -> None:
    # Fact: Qwen3.5's generation prompt opens "<think>\n" unless enable_thinking is false; then it writes the
    # empty block the training render of a plain row holds, so prompt and training agree token for token.
    tok = family(qwen3, DATA / "qwen3.5.jinja")
    assert "generation_prompt_opens_reasoning" in codes(run_checks(tok, [ONE, MULTI]))
    from workbench.template.chat import set_template_kwargs

    set_template_kwargs(tok, {"enable_thinking": False})
    report = run_checks(tok, [ONE, MULTI])
    assert not codes(report) & (ERRORS | {"generation_prompt_opens_reasoning"})


def test_qwq_drops_history_reasoning_and_reads_no_reasoning_field(qwen3) -> None:
    # Fact: QwQ-32B reads only content: reasoning goes inline as a <think> block, kept in the last turn and cut
    # from history turns (split on </think>); its prompt opens "<think>\n", which plain rows never show.
    tok = family(qwen3, DATA / "qwq-32b.jinja")
    assert trained(tok, THOUGHT2) == ["2 plus 3 is 5.<|im_end|>", "<think>\nTen and twenty make thirty.\n</think>\n\n10 plus 20 is 30.<|im_end|>"]
    report = run_checks(tok, [ONE, THOUGHT2])
    assert not codes(report) & ERRORS
    assert report.facts["template"]["reasoning"] == "inline" and by_code(report, "reasoning_inline").example_ids == ids([THOUGHT2])
    assert "has no reasoning block" in by_code(report, "generation_prompt_opens_reasoning").message
    assert by_code(report, "reasoning_dropped").data["last_turns"] == 0


def test_deepseek_r1_reasoning_rows_train_their_answers_and_say_the_reasoning_is_dropped(qwen3, fixtures_dir: Path, tmp_path: Path) -> None:
    # Fact: DeepSeek-R1's template (llama.cpp's copy) keeps only what follows </think> in every assistant turn,
    # the last included, and its prompt ends "<｜Assistant｜><think>\n". Rows with reasoning render their
    # answer and <｜end▁of▁sentence｜>: trained, no false "give them an assistant answer".
    tok = family(qwen3, fixtures_dir / "templates" / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", **R1_TOKENS)
    assert trained(tok, THOUGHT2) == ["2 plus 3 is 5.<｜end▁of▁sentence｜>", "10 plus 20 is 30.<｜end▁of▁sentence｜>"]
    report = run_checks(tok, [THOUGHT, THOUGHT2], model_dir=model_dir(tmp_path, tok))
    assert not codes(report) & ERRORS and not report.fails("error")
    dropped = by_code(report, "reasoning_dropped")
    assert "of every assistant turn, the last included" in dropped.message and dropped.data["turns"] == 3
    assert "deepseek_r1_distill_training" in dropped.hint


def test_gpt_oss_channels_identity_block_date_and_reasoning_effort(qwen3, tmp_path: Path) -> None:
    # Facts: gpt-oss's generation prompt is "<|start|>assistant", so the channel header
    # "<|channel|>final<|message|>" is generated and trained; every render starts with a "You are ChatGPT"
    # block holding today's date (strftime_now, no variable pins it) and "Reasoning: " + reasoning_effort;
    # the last turn ends <|return|>, history turns <|end|> and lose their analysis-channel reasoning.
    from workbench.template.chat import render, set_template_kwargs

    tok = family(qwen3, DATA / "gpt-oss.jinja", **HARMONY)
    assert trained(tok, ONE) == ["<|channel|>final<|message|>2 plus 3 is 5.<|return|>"]
    assert trained(tok, THOUGHT)[0].startswith("<|channel|>analysis<|message|>Two and three make five.<|end|><|start|>assistant")
    report = run_checks(tok, [ONE, MULTI, THOUGHT2], model_dir=model_dir(tmp_path, tok))
    assert not codes(report) & ERRORS
    assert "You are ChatGPT, a large language model trained by OpenAI." in by_code(report, "injected_text").message
    dated = by_code(report, "date_in_render")
    assert "Current date: 2024-01-02" in dated.message and dated.data["date_string_pins_it"] is False
    causes = {f.data["cause"]: f for f in report.findings if f.code == "not_prefix_preserving"}
    assert set(causes) == {"end", "reasoning"} and "'<|return|>'" in causes["end"].message
    assert "'<|channel|>final<|message|>'" in by_code(report, "template_text_trained").message
    set_template_kwargs(tok, {"reasoning_effort": "low"})
    assert "Reasoning: low" in render(tok, ONE)


@pytest.mark.parametrize(
    ("name", "tokens", "extra"),
    [("trl-qwen3_training.jinja", {}, "'\\n' after the end-of-turn token, inside the {% generation %} tags"),
     ("trl-gptoss_training.jinja", HARMONY, "'<|start|>assistant' ahead of the generated text, inside the {% generation %} tags"),
     ("trl-deepseekv3_training.jinja", R1_TOKENS, "'<｜Assistant｜>' ahead of the generated text, inside the {% generation %} tags")],
)  # fmt: skip
def test_trl_training_templates_train_as_tagged_and_say_so(qwen3, fixtures_dir: Path, tmp_path: Path, name: str, tokens: dict, extra: str) -> None:
    # Fact: TRL's *_training templates are right by definition for what they tag: their tags reach past the
    # answer (a "\n" after <|im_end|>; gpt-oss's "<|start|>assistant" header; DeepSeek's "<｜Assistant｜>"),
    # and that is trained exactly as transformers' return_assistant_tokens_mask marks it, reported as info.
    path = fixtures_dir / "templates" / name if (fixtures_dir / "templates" / name).exists() else DATA / name
    tok = family(qwen3, path, **tokens)
    report = run_checks(tok, [ONE, MULTI, THOUGHT], model_dir=model_dir(tmp_path, tok))
    assert not codes(report) & (ERRORS | {"mask_disagreement"}) and not report.fails("error")
    assert report.facts["derivations"] == {"generation_tags": 3}
    text = by_code(report, "template_text_trained")
    assert text.severity == "info" and extra in text.message


def test_phi3_training_tags_and_phi35_appended_eos(fixtures_dir: Path) -> None:
    # Facts: TRL's phi3_training tags the answer, <|end|>, the "\n" after it and, after the last turn, the
    # <|endoftext|> the template appends: trained as tagged, no error. Phi-3.5's template appends that EOS
    # only after the last message: not_prefix_preserving names the appended EOS, not removed reasoning.
    from workbench.template.tokenizer import load_tokenizer

    gguf = fixtures_dir / "tokenizers" / "phi-3" / "ggml-vocab-phi-3.gguf"
    tagged = load_tokenizer(gguf, template=DATA / "trl-phi3_training.jinja")
    report = run_checks(tagged, [ONE, MULTI])
    assert not codes(report) & (ERRORS | {"mask_disagreement"})
    assert "<|endoftext|>" in by_code(report, "template_text_trained").message
    phi35 = load_tokenizer(gguf, template=fixtures_dir / "templates" / "microsoft-Phi-3.5-mini-instruct.jinja")
    moved = by_code(run_checks(phi35, [MULTI]), "not_prefix_preserving")
    assert moved.data["cause"] == "end" and "'<|endoftext|>'" in moved.message and "reasoning" not in moved.message


def test_llama_headers_and_the_date_only_32_renders(tiny_model_dir, fixtures_dir: Path) -> None:
    # Facts: Llama-3.1 and 3.2 always write "Cutting Knowledge Date: December 2023 / Today Date: …" into the
    # system header; 3.1's date is fixed ("26 Jul 2024"), 3.2's is strftime_now's unless date_string is passed.
    from workbench.template.chat import set_template_kwargs
    from workbench.template.tokenizer import load_tokenizer

    folder = tiny_model_dir("llama3", model=False)
    l31 = load_tokenizer(folder, template=fixtures_dir / "templates" / "meta-llama-Llama-3.1-8B-Instruct.jinja")
    report = run_checks(l31, [ONE])
    assert "Cutting Knowledge Date: December 2023" in by_code(report, "injected_text").message
    assert "date_in_render" not in codes(report)
    l32 = load_tokenizer(folder, template=fixtures_dir / "templates" / "meta-llama-Llama-3.2-3B-Instruct.jinja")
    dated = by_code(run_checks(l32, [ONE, [SYSTEM, *ONE]]), "date_in_render")
    assert "Today Date: 02 Jan 2024" in dated.message and "Today Date: 23 Nov 2031" in dated.message
    assert dated.data["date_string_pins_it"] is True and len(dated.example_ids) == 2
    set_template_kwargs(l32, {"date_string": "26 Jul 2024"})
    assert "date_in_render" not in codes(run_checks(l32, [ONE]))


@pytest.mark.parametrize("name", ["granite-3.1.jinja", "mistral-small-3.jinja"])
def test_dated_default_system_prompts(qwen3, fixtures_dir: Path, name: str) -> None:
    # Fact: Granite-3.1 and Mistral-Small-3 put a default system prompt holding today's date into rows without
    # a system message: hidden_system_prompt, and date_in_render for those rows only (no variable pins it).
    from workbench.template.tokenizer import load_tokenizer

    if name.startswith("granite"):
        tok = family(qwen3, DATA / name, specials=["<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"], eos="<|end_of_text|>")
    else:
        tok = load_tokenizer(fixtures_dir / "tokenizers" / "mistral-v3", template=DATA / name)
    report = run_checks(tok, [ONE, [SYSTEM, *ONE]])
    assert by_code(report, "hidden_system_prompt").example_ids == ids([ONE])
    dated = by_code(report, "date_in_render")
    assert dated.example_ids == ids([ONE]) and dated.data["date_string_pins_it"] is False


def test_a_second_bos_after_a_leading_newline_is_a_double_bos(tiny_model_dir) -> None:
    # Fact: some templates start with "\n" before their BOS; the tokenizer's own BOS then sits at 0 and the
    # template's at 2, which a check of the first two ids misses.
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir("llama3", model=False))
    tok.chat_template = "\n" + tok.chat_template
    f = by_code(run_checks(tok, [ONE]), "double_bos_retokenized")
    assert f.data["bos"] == "<|begin_of_text|>"


def test_cli_plain_rows_under_qwen3_exit_zero(tmp_path: Path, fixtures_dir: Path) -> None:
    data = tmp_path / "plain.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in (ONE, [SYSTEM, *ONE])), encoding="utf-8")
    model = str(fixtures_dir / "tokenizers" / "qwen3")
    res = run_cli("check", str(data), "--model", model, "--template", str(fixtures_dir / "templates" / "Qwen-Qwen3-0.6B.jinja"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "template_text_trained" in res.stdout and res.stdout.strip().splitlines()[-1].startswith("0 errors, 0 warnings")
    res = run_cli("check", str(data), "--model", model, "--template", str(DATA / "qwen3.5.jinja"), "--template-kwargs", '{"enable_thinking": false}', "--json")
    assert res.returncode == 0 and not {f["code"] for f in json.loads(res.stdout)["findings"]} & ERRORS


def test_row_checks_on_two_workers_find_exactly_what_one_finds(qwen3, fixtures_dir: Path) -> None:
    # The row checks run inside the worker processes that render the rows (only their summaries come back):
    # findings, examples, counts and token totals are the same as on one core, in the same order.
    from workbench.checks.rows import row_checks
    from workbench.checks.run import _as_rows

    tok = family(qwen3, fixtures_dir / "templates" / "Qwen-Qwen3-0.6B.jinja")
    long = [TURN1[0], {"role": "assistant", "content": "five " * 300}]
    mix = [ONE, MULTI, THOUGHT, THOUGHT2, [SYSTEM, *MULTI], [*MULTI, TURN1[0]], [TURN1[0]], long]
    rows, rids = _as_rows([[{**m, "content": f"{m['content']} ({i})"} for m in mix[i % len(mix)]] for i in range(120)])
    one = row_checks(tok, rows, rids, max_length=64, workers=1, batch_size=8)
    two = row_checks(tok, rows, rids, max_length=64, workers=2, batch_size=8)
    assert [f.to_dict() for f in two[0]] == [f.to_dict() for f in one[0]]
    assert two[1] == one[1] and one[1].rendered == 105
    found = {f.code for f in one[0]}
    assert {"reasoning_dropped", "trailing_turn", "over_max_length", "no_trained_tokens", "template_text_trained"} <= found
