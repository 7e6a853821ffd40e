"""workbench.checks.run: each finding code fires on a tiny tokenizer built to fail it, and stays quiet on one that does not."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from workbench.template import mask
from workbench.checks.run import CODES, check_options, run_checks
from workbench.errors import UsageError
from workbench.records import Conversation, Finding, Message, Source

SYSTEM = {"role": "system", "content": "Be brief."}
TURN1 = [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "2 plus 3 is 5."}]
TURN2 = [{"role": "user", "content": "And 10 plus 20?"}, {"role": "assistant", "content": "10 plus 20 is 30."}]
ONE = TURN1
MULTI = TURN1 + TURN2
ROWS = [ONE, MULTI, [SYSTEM, *ONE], [SYSTEM, *MULTI]]

# A ChatML layout whose generation prompt ends in a space: "Assistant: " then " Hello" tokenizes differently.
SPACE_PROMPT = (
    "{%- for m in messages %}{%- if m.role == 'user' %}{{- 'User: ' + m.content + '\\n' }}"
    "{%- else %}{{- 'Assistant: ' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- 'Assistant: ' }}{%- endif %}"
)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def by_code(report, code: str) -> Finding:
    hits = [f for f in report.findings if f.code == code]
    assert len(hits) == 1, [f.code for f in report.findings]
    return hits[0]


def ids_of(rows: list[list[dict]]) -> list[str]:
    return run_checks.__globals__["_as_rows"](rows)[1]


def variant(tok, old: str, new: str, *, count: int = 1):
    """A copy of ``tok`` with its chat template edited (the session-cached original stays untouched)."""
    text = tok.chat_template
    assert old in text, old
    out = copy.deepcopy(tok)
    out.chat_template = text.replace(old, new, count) if count else text.replace(old, new)
    return out


def with_template(tok, template: str):
    out = copy.deepcopy(tok)
    out.chat_template = template
    return out


# --- the clean cases --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["assistant", "last", "all"])
def test_chatml_folder_is_clean(tiny_model_dir, strategy: str) -> None:
    from workbench.template.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir("chatml", model=False))
    report = run_checks(tok, ROWS, strategy=strategy, max_length=4096)
    assert report.findings == []
    assert report.rendered == report.rows == 4 and not report.fails("info")
    facts = report.facts["template"]
    assert facts["end_of_turn"] == "<|im_end|>" and facts["generation_tags"] is True
    assert report.facts["derivations"] == {"generation_tags": 4}


def test_report_shape_ids_progress_and_json(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("gemma")
    convs = [Conversation.make([Message(m["role"], m["content"]) for m in r], Source("d.jsonl", k + 1)) for k, r in enumerate(ROWS)]
    seen: list[tuple[int, int | None]] = []
    report = run_checks(tok, convs, on_progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (4, 4)
    sev = [f.severity for f in report.findings]
    assert sev == sorted(sev, key=["error", "warning", "info"].index)
    unsupported = by_code(report, "system_unsupported")
    assert unsupported.example_ids == sorted([convs[2].id, convs[3].id])
    assert report.by_example[convs[2].id] == ["system_unsupported"]
    assert convs[0].id not in report.by_example
    assert report.counts["system_unsupported"] == 2
    assert report.fails("error") and report.worst() == "error"
    data = json.loads(json.dumps(report.to_dict()))
    assert {f["code"] for f in data["findings"]} == codes(report.findings)
    assert all(f.code in CODES and f.hint for f in report.findings)
    assert run_checks(tok, ROWS).findings == report.findings  # plain message lists: the same content ids


def test_bad_options_are_usage_errors(tiny_tokenizer) -> None:
    with pytest.raises(UsageError, match="--strategy"):
        run_checks(tiny_tokenizer("chatml"), ROWS, strategy="everything")
    with pytest.raises(UsageError, match="--max-length"):
        check_options(max_length=0)
    with pytest.raises(UsageError, match="--fail-on"):
        check_options(fail_on="fatal")


# --- the template -----------------------------------------------------------------------------


def test_no_chat_template(tiny_tokenizer) -> None:
    report = run_checks(tiny_tokenizer("chatml", chat_template=False), ROWS)
    f = by_code(report, "no_chat_template")
    assert f.severity == "error" and "--template" in f.hint and "ChatML" in f.hint
    assert report.rendered == 0 and "no_chat_template" not in codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings)


def test_render_errors_are_grouped_per_error_and_the_run_goes_on(tiny_tokenizer) -> None:
    tok = variant(
        tiny_tokenizer("chatml"),
        "{%- for message in messages %}",
        "{%- for message in messages %}{%- if 'forbidden' in message.content %}"
        "{{- raise_exception('forbidden word in ' + message.role) }}{%- endif %}",
    )
    bad_user = [{"role": "user", "content": "a forbidden question"}, TURN1[1]]
    bad_answer = [TURN1[0], {"role": "assistant", "content": "a forbidden answer"}]
    report = run_checks(tok, [ONE, bad_user, bad_answer, bad_user, MULTI])
    errors = [f for f in report.findings if f.code == "render_error"]
    assert [len(f.example_ids) for f in errors] == [1, 1]  # the two bad_user rows share one id
    assert {f.data["error"].split(": ")[-1] for f in errors} == {"forbidden word in user", "forbidden word in assistant"}
    assert report.rendered == 2
    assert "render_error" not in codes(run_checks(tok, [ONE, MULTI]).findings)


def test_system_unsupported_and_roles_not_alternating(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("gemma")
    twice = [TURN1[0], TURN1[0], TURN1[1]]
    report = run_checks(tok, [*ROWS, twice])
    assert by_code(report, "system_unsupported").example_ids == sorted(ids_of(ROWS[2:]))
    assert by_code(report, "roles_not_alternating").example_ids == ids_of([twice])
    chatml = run_checks(tiny_tokenizer("chatml"), [*ROWS, twice])  # ChatML renders both
    assert not codes(chatml.findings) & {"system_unsupported", "roles_not_alternating", "render_error"}


def test_hidden_default_system_prompt(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml", default_system="You are Tiny, a helpful assistant.")
    report = run_checks(tok, ROWS)
    f = by_code(report, "hidden_system_prompt")
    assert f.severity == "warning" and f.data["default_system"] == "You are Tiny, a helpful assistant."
    assert f.example_ids == sorted(ids_of(ROWS[:2]))
    only_system = run_checks(tok, ROWS[2:])
    assert by_code(only_system, "hidden_system_prompt").severity == "info"  # a fact, but no row gets it
    assert "hidden_system_prompt" not in codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings)


def test_system_prompt_moved_to_the_last_user_turn(tiny_tokenizer) -> None:
    report = run_checks(tiny_tokenizer("mistral"), ROWS)
    f = by_code(report, "system_prompt_moved")
    assert f.example_ids == ids_of([ROWS[3]])  # single-turn rows keep it first
    assert f.data == {"training": "later", "inference": "later"}
    first = run_checks(tiny_tokenizer("mistral", system_position="first"), ROWS)
    assert not codes(first.findings) & {"system_prompt_moved", "not_prefix_preserving"}


def test_system_dropped(tiny_tokenizer) -> None:
    tok = variant(tiny_tokenizer("chatml"), "{%- else %}", "{%- elif message.role != 'system' %}")
    report = run_checks(tok, ROWS)
    assert by_code(report, "system_dropped").example_ids == sorted(ids_of(ROWS[2:]))
    assert "system_dropped" not in codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings)


# --- tokens -----------------------------------------------------------------------------------


def test_double_bos_on_both_paths(tiny_tokenizer) -> None:
    llama = tiny_tokenizer("llama3")  # the template writes <|begin_of_text|>, the tokenizer adds it too
    report = run_checks(llama, ROWS)
    assert "double_bos_retokenized" in codes(report.findings) and "double_bos" not in codes(report.findings)
    assert not codes(run_checks(tiny_tokenizer("llama3", add_bos=False), ROWS).findings) & {"double_bos", "double_bos_retokenized"}
    twice = variant(llama, "{{- bos_token }}", "{{- bos_token + bos_token }}")
    assert by_code(run_checks(twice, ROWS), "double_bos").severity == "error"


def test_pad_is_eos_and_no_pad(tiny_tokenizer) -> None:
    report = run_checks(tiny_tokenizer("chatml", pad_equals_eos=True), ROWS)
    assert by_code(report, "pad_is_eos").severity == "warning"
    assert not codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings) & {"pad_is_eos", "no_pad_token"}
    nopad = copy.deepcopy(tiny_tokenizer("chatml"))
    nopad.pad_token = None
    assert by_code(run_checks(nopad, ROWS), "no_pad_token").severity == "info"


def test_stop_tokens_against_the_model_folder(tiny_tokenizer, tiny_model_dir, tmp_path) -> None:
    from workbench.template.tokenizer import load_tokenizer

    # In memory: only the tokenizer's EOS (<eos>) is known, and gemma turns end with <end_of_turn>.
    alone = run_checks(tiny_tokenizer("gemma"), [ONE])
    f = by_code(alone, "eot_not_stop")
    assert "<end_of_turn>" in f.message and "no config.json" in f.message and f.severity == "warning"
    # The folder's generation_config.json lists <end_of_turn>: generation stops; the other files still disagree.
    folder = tiny_model_dir("gemma", model=False)
    report = run_checks(load_tokenizer(folder), [ONE])
    assert "eot_not_stop" not in codes(report.findings)
    assert "tokenizer_config.json" in by_code(report, "stop_tokens_disagree").message
    # A generation_config.json that leaves <end_of_turn> out: generate() runs past the turn.
    broken = tmp_path / "gemma"
    shutil.copytree(folder, broken)
    gen = json.loads((broken / "generation_config.json").read_text())
    gen["eos_token_id"] = gen["eos_token_id"][0]
    (broken / "generation_config.json").write_text(json.dumps(gen))
    stop = by_code(run_checks(load_tokenizer(broken), [ONE]), "eot_not_stop")
    assert stop.severity == "error" and "generation_config.json" in stop.message
    # model_dir= points the check at another folder (here a ChatML one, whose ids mean other tokens).
    elsewhere = run_checks(tiny_tokenizer("gemma"), [ONE], model_dir=tiny_model_dir("chatml", model=False))
    assert report.facts["template"]["stop_ids"] != elsewhere.facts["template"]["stop_ids"]
    assert not codes(run_checks(load_tokenizer(tiny_model_dir("llama3", model=False)), [ONE]).findings) & {
        "eot_not_stop",
        "stop_tokens_disagree",
    }


def test_multi_token_end_of_turn(tiny_tokenizer) -> None:
    tok = with_template(tiny_tokenizer("chatml"), SPACE_PROMPT.replace("<|im_end|>\\n", "\\n### End\\n"))
    report = run_checks(tok, [ONE])
    f = by_code(report, "multi_token_eot")
    assert f.data["marker"] == "### End" and len(f.data["ids"]) > 1
    assert "eot_not_trained" in codes(report.findings)  # no end-of-turn id ever reaches the labels
    assert "multi_token_eot" not in codes(run_checks(tiny_tokenizer("chatml"), [ONE]).findings)


def test_end_of_turn_not_trained(tiny_tokenizer) -> None:
    # A template that closes no turn: nothing teaches the model to stop.
    plain = "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '\\n' }}{%- endfor %}" \
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    report = run_checks(with_template(tiny_tokenizer("chatml"), plain), ROWS)
    f = by_code(report, "eot_not_trained")
    assert f.severity == "error" and len(f.example_ids) == 4
    assert "eot_not_trained" not in codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings)


# --- parity and prefixes ----------------------------------------------------------------------


def test_generation_prompt_must_be_a_token_prefix(tiny_tokenizer) -> None:
    base = tiny_tokenizer("chatml", generation_tags=False)
    # Text differs: the generation prompt names another role than the training render.
    text = variant(base, "{{- '<|im_start|>assistant\\n' }}\n{%- endif %}", "{{- '<|im_start|>bot\\n' }}\n{%- endif %}")
    f = by_code(run_checks(text, [ONE]), "generation_prompt_mismatch")
    assert f.data["examples"][0]["kind"] == "text"
    # Same text, other tokens: "Assistant: " ends in a lone space that training merges into " Five".
    words = [TURN1[0], {"role": "assistant", "content": "Five."}]
    space = by_code(run_checks(with_template(base, SPACE_PROMPT), [words]), "generation_prompt_mismatch")
    example = space.data["examples"][0]
    assert example["kind"] == "token boundary" and example["inference"][-1] == "Ġ"
    assert "generation_prompt_mismatch" not in codes(run_checks(base, ROWS).findings)


def test_not_prefix_preserving(tiny_tokenizer) -> None:
    # Qwen3-like: earlier assistant turns lose everything up to "</think>" once a later user turn follows.
    tok = variant(
        tiny_tokenizer("chatml", generation_tags=False),
        "{{- message.content + '<|im_end|>' }}",
        "{{- (message.content.split('</think>')[-1] if not loop.last else message.content) + '<|im_end|>' }}",
    )
    thought = [TURN1[0], {"role": "assistant", "content": "<think>add</think>5."}, *TURN2]
    report = run_checks(tok, [thought, MULTI])
    f = by_code(report, "not_prefix_preserving")
    assert f.example_ids == ids_of([thought]) and f.data["examples"][0]["message"] == 1
    assert "not_prefix_preserving" not in codes(run_checks(tiny_tokenizer("chatml"), [thought, MULTI]).findings)


# --- the mask ---------------------------------------------------------------------------------


def test_mask_unverified_when_the_template_rewrites_content(tiny_tokenizer) -> None:
    tok = variant(tiny_tokenizer("chatml", generation_tags=False), "{{- message.content + '<|im_end|>' }}",
                  "{{- message.content | upper + '<|im_end|>' }}")  # fmt: skip
    f = by_code(run_checks(tok, [ONE]), "mask_unverified")
    assert f.data["examples"][0]["problems"]
    assert "mask_unverified" not in codes(run_checks(tiny_tokenizer("chatml", generation_tags=False), ROWS).findings)


def test_generation_tags_disagreeing_with_the_derivation(tiny_tokenizer) -> None:
    # tags that close before <|im_end|>: they are the side that is off, and the mask they give fails
    tok = variant(
        tiny_tokenizer("chatml"),
        "{{- message.content + '<|im_end|>' }}{%- endgeneration %}",
        "{{- message.content }}{%- endgeneration %}{{- '<|im_end|>' }}",
    )
    report = run_checks(tok, [ONE])
    f = by_code(report, "mask_disagreement")
    assert "the tags are off: they leave out '<|im_end|>' of message 1" in f.data["examples"][0]["problems"][0]
    assert "fix the {% generation %} tags" in f.hint
    assert "eot_not_trained" in codes(report.findings)  # the tags' mask leaves the stop token untrained
    assert "mask_disagreement" not in codes(run_checks(tiny_tokenizer("chatml"), ROWS).findings)


def test_rows_without_an_assistant_turn(tiny_tokenizer) -> None:
    report = run_checks(tiny_tokenizer("chatml"), [ONE, [TURN1[0]]])
    assert by_code(report, "no_trained_tokens").example_ids == ids_of([[TURN1[0]]])
    assert run_checks(tiny_tokenizer("chatml"), [[TURN1[0]]], strategy="all").findings == []


def test_trailing_turn_after_the_last_reply(tiny_tokenizer) -> None:
    trailing = [*TURN1, {"role": "user", "content": "Are you sure?"}]
    report = run_checks(tiny_tokenizer("chatml"), [ONE, trailing])
    f = by_code(report, "trailing_turn")
    assert f.example_ids == ids_of([trailing]) and f.severity == "warning"
    assert "trailing_turn" not in codes(run_checks(tiny_tokenizer("chatml"), [ONE]).findings)


# --- truncation -------------------------------------------------------------------------------


def test_truncation_impact(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml")
    long_answer = [TURN1[0], {"role": "assistant", "content": "2 plus 3 is 5. " * 12}]
    long_prompt = [{"role": "user", "content": "Please add the numbers. " * 12}, TURN1[1]]
    lengths = {k: mask.render_and_mask(tok, r).length for k, r in (("short", ONE), ("answer", long_answer), ("prompt", long_prompt))}
    limit = lengths["short"] + 2
    assert lengths["answer"] > limit and lengths["prompt"] > limit
    report = run_checks(tok, [ONE, long_answer, long_prompt], max_length=limit)
    over = by_code(report, "over_max_length")
    assert over.example_ids == sorted(ids_of([long_answer, long_prompt]))
    assert 0 < over.data["share_lost"] <= 1 and over.data["trained_lost"] > 0
    assert by_code(report, "truncation_cuts_eot").example_ids == ids_of([long_answer])
    assert by_code(report, "truncated_to_nothing").example_ids == ids_of([long_prompt])
    assert report.by_example[ids_of([long_prompt])[0]] == ["over_max_length", "truncated_to_nothing"]
    roomy = run_checks(tok, [ONE, long_answer, long_prompt], max_length=max(lengths.values()))
    assert not codes(roomy.findings) & {"over_max_length", "truncation_cuts_eot", "truncated_to_nothing"}


def test_every_code_has_a_severity_meaning_and_hint() -> None:
    for code, spec in CODES.items():
        assert spec.severity in ("error", "warning", "info") and spec.meaning and spec.hint, code


# --- the command ------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(tiny_model_dir, tmp_path) -> None:
    from tests.test_cli import run_cli

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS), encoding="utf-8")
    model = str(tiny_model_dir("chatml", model=False))
    clean = run_cli("check", str(data), "--model", model, "--fail-on", "info")
    assert clean.returncode == 0, clean.stderr
    assert "4 rows, 4 rendered" in clean.stdout and "no findings" in clean.stdout
    cut = run_cli("check", str(data), "--model", model, "--max-length", "12", "--json")
    assert cut.returncode == 1, cut.stderr
    report = json.loads(cut.stdout)
    assert {"over_max_length", "truncated_to_nothing"} <= {f["code"] for f in report["findings"]}
    assert report["severity_counts"]["error"] >= 1 and report["max_length"] == 12
    bad = run_cli("check", str(data), "--model", model, "--strategy", "everything")
    assert bad.returncode == 2 and "--strategy" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("check", str(data), "--model", model, "--template-kwargs", "{enable_thinking: false}")
    assert bad.returncode == 2 and "--template-kwargs is not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_not_prefix_preserving_names_a_moved_system_prompt(tiny_tokenizer) -> None:
    # Fact: the Mistral-style tiny template folds the system prompt into the last user turn, so it moves as
    # the conversation grows; the finding says so, not "removed reasoning".
    report = run_checks(tiny_tokenizer("mistral"), [[SYSTEM, *MULTI]])
    f = by_code(report, "not_prefix_preserving")
    assert f.data["cause"] == "system" and "system prompt" in f.message and "reasoning" not in f.message + f.hint
