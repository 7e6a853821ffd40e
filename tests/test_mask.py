"""workbench.template.mask: the supervised ids are exactly each answer plus its end-of-turn token, derived two ways, verified."""

from __future__ import annotations

import pytest

from workbench.template import batch, mask

from workbench.train import tiny
from workbench.records import Conversation, Message, Rendered, Source

SYSTEM = {"role": "system", "content": "Be brief."}
CONV = [
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "2 plus 3 is 5."},
    {"role": "user", "content": "And 10 plus 20?"},
    {"role": "assistant", "content": "10 plus 20 is 30.\n\n#### 30"},
]
FAMILIES = sorted(tiny.FAMILIES)


def answers(conv: list[dict]) -> list[str]:
    return [m["content"] for m in conv if m["role"] == "assistant"]


def supervised(rendered: Rendered) -> list[list[int]]:
    return [rendered.input_ids[a:b] for a, b in mask.trained_runs(rendered.labels)]


def conv_for(family: str, system: bool = True) -> list[dict]:
    return CONV if family == "gemma" or not system else [SYSTEM, *CONV]


@pytest.mark.parametrize("tags", [True, False], ids=["tags", "diff"])
@pytest.mark.parametrize("family", FAMILIES)
def test_supervised_ids_are_answer_plus_end_of_turn(tiny_tokenizer, family: str, tags: bool) -> None:
    tok = tiny_tokenizer(family, generation_tags=tags)
    eot = tok.convert_tokens_to_ids(tiny.FAMILIES[family].end_of_turn)
    conv = conv_for(family)
    res = mask.render_and_mask(tok, conv)
    assert res.error is None and res.problems == []
    assert res.derivation == ("generation_tags" if tags else "diff")
    assert res.agree is (True if tags else None)
    expected = [tok.encode(a, add_special_tokens=False) + [eot] for a in answers(conv)]
    assert supervised(res.rendered) == expected
    assert res.rendered.assistant_spans == mask.trained_runs(res.rendered.labels)
    assert all(x == -100 or x == i for x, i in zip(res.rendered.labels, res.rendered.input_ids))


@pytest.mark.parametrize("family", FAMILIES)
def test_strategies_and_train_eot(tiny_tokenizer, family: str) -> None:
    tok = tiny_tokenizer(family)
    eot = tok.convert_tokens_to_ids(tiny.FAMILIES[family].end_of_turn)
    conv = conv_for(family)
    last = mask.render_and_mask(tok, conv, strategy="last")
    assert last.problems == [] and supervised(last.rendered) == [tok.encode(answers(conv)[-1], add_special_tokens=False) + [eot]]
    full = mask.render_and_mask(tok, conv, strategy="all")
    assert full.problems == [] and full.rendered.labels == full.rendered.input_ids
    no_eot = mask.render_and_mask(tok, conv, train_eot=False)
    assert no_eot.problems == []
    assert supervised(no_eot.rendered) == [tok.encode(a, add_special_tokens=False) for a in answers(conv)]


def test_chatml_newline_after_im_end_is_not_trained(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml")
    res = mask.render_and_mask(tok, CONV)
    for a, b in res.rendered.assistant_spans:
        assert tok.convert_ids_to_tokens(res.rendered.input_ids[b - 1]) == "<|im_end|>"
        assert res.rendered.labels[b] == -100  # the "\n" that follows
    with pytest.raises(Exception, match="strategy"):
        mask.render_and_mask(tok, CONV, strategy="everything")


def test_real_qwen_fixture_tags_train_exactly_what_transformers_marks(fixtures_dir) -> None:
    # Fact: TRL's qwen2_5_training tags open before the "\n" that follows "<|im_start|>assistant" and close
    # after the "\n" that follows <|im_end|>. With tags, workbench trains exactly the tokens transformers'
    # return_assistant_tokens_mask marks (what TRL trains); the diff derivation (no tags) trains the answer
    # and <|im_end|>, and the two agree: the extra "\n"s are the turn's own template text.
    from workbench.template.tokenizer import load_tokenizer

    folder = fixtures_dir / "tokenizers" / "qwen2.5"
    trl = load_tokenizer(folder, template=fixtures_dir / "templates" / "trl-qwen2_5_training.jinja")
    plain = load_tokenizer(folder)
    im_end = trl.convert_tokens_to_ids("<|im_end|>")
    newline = trl.encode("\n")
    for conv in (CONV, [SYSTEM, *CONV]):
        tagged = mask.render_and_mask(trl, conv)
        diffed = mask.render_and_mask(plain, conv)
        assert tagged.derivation == "generation_tags" and tagged.agree is True and tagged.problems == []
        assert diffed.derivation == "diff" and diffed.problems == []
        assert tagged.rendered.input_ids == diffed.rendered.input_ids
        raw = trl.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
        assert [i if m else -100 for i, m in zip(raw["input_ids"], raw["assistant_masks"])] == tagged.rendered.labels
        assert supervised(tagged.rendered) == [newline + trl.encode(a) + [im_end] + newline for a in answers(conv)]
        assert supervised(diffed.rendered) == [trl.encode(a) + [im_end] for a in answers(conv)]
        assert ("tags_after", "\n") in tagged.written and ("tags_before", "\n") in tagged.written


def test_non_prefix_preserving_templates_fall_back(fixtures_dir) -> None:
    from workbench.template.tokenizer import load_tokenizer

    folder = fixtures_dir / "tokenizers" / "qwen2.5"
    nemo = load_tokenizer(folder, template=fixtures_dir / "templates" / "mistralai-Mistral-Nemo-Instruct-2407.jinja")
    res = mask.render_and_mask(nemo, [SYSTEM, *CONV])
    assert res.problems == [] and any("generation prompt is not where this turn starts" in n for n in res.notes)
    # Fact: Qwen3's template writes the last turn's reasoning as <think>\n…\n</think>\n\n before the answer;
    # an inline <think> block in the data is split off as reasoning and trained inside that block.
    qwen3 = load_tokenizer(folder, template=fixtures_dir / "templates" / "Qwen-Qwen3-0.6B.jinja")
    res = mask.render_and_mask(qwen3, [*CONV[:3], {"role": "assistant", "content": "<think>add</think>30"}])
    assert res.error is None and res.problems == []
    last = supervised(res.rendered)[-1]
    assert qwen3.decode(last) == "<think>\nadd\n</think>\n\n30<|im_end|>"
    assert ("before", "<think>\n…\n</think>\n\n") in res.written


def test_generation_tags_that_disagree_are_reported_with_the_side_that_is_off(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml")
    header = "{{- '<|im_start|>assistant\\n' }}\n        {%- generation %}"
    assert header in tok.chat_template
    # tags that stop before <|im_end|>: the tags are off, and the mask they give fails verification
    short = tok.chat_template.replace("{{- message.content + '<|im_end|>' }}{%- endgeneration %}", "{{- message.content }}{%- endgeneration %}{{- '<|im_end|>' }}")
    assert short != tok.chat_template
    res = mask.render_and_mask(tiny.build_tokenizer("chatml", chat_template=short), CONV)
    assert res.agree is False and "the tags are off: they leave out '<|im_end|>' of message 1" in res.disagreement
    assert any("not an end-of-turn token" in p for p in res.problems)
    # tags that also cover the assistant header (as gpt-oss's and DeepSeek-V3's training templates do):
    # trained as tagged, the header noted as template text, no disagreement
    wide = tok.chat_template.replace(header, "{%- generation %}{{- '<|im_start|>assistant\\n' }}")
    res = mask.render_and_mask(tiny.build_tokenizer("chatml", chat_template=wide), CONV)
    assert res.agree is True and res.problems == [] and ("tags_before", "<|im_start|>assistant\n") in res.written


def test_verify_catches_a_broken_mask(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("llama3")
    res = mask.render_and_mask(tok, CONV)
    assert mask.verify(tok, CONV, res.rendered) == []
    r = res.rendered
    (a1, b1), (a2, b2) = r.assistant_spans

    def broken(labels: list[int], spans: list[tuple[int, int]]) -> list[str]:
        return mask.verify(tok, CONV, Rendered(r.input_ids, labels, spans, r.text))

    # one header token before the first answer is trained too
    labels = list(r.labels)
    labels[a1 - 1] = r.input_ids[a1 - 1]
    problems = broken(labels, [(a1 - 1, b1), (a2, b2)])
    assert len(problems) == 1 and "message 1: tokens" in problems[0] and "the inference prompt holds them" in problems[0]
    # the first answer's first token is left out
    labels = list(r.labels)
    labels[a1] = -100
    problems = broken(labels, [(a1 + 1, b1), (a2, b2)])
    assert any("message 1: the trained text does not end with the assistant content" in p for p in problems)
    # the end-of-turn token of the second answer is left out
    labels = list(r.labels)
    labels[b2 - 1] = -100
    assert any("not an end-of-turn token" in p for p in broken(labels, [(a1, b1), (a2, b2 - 1)]))
    # a user turn is trained
    labels = list(r.labels)
    labels[2:5] = r.input_ids[2:5]
    problems = broken(labels, [(2, 5), (a1, b1), (a2, b2)])
    assert any("3 trained region(s) for 2 assistant message(s)" in p for p in problems)
    # a label that is not its input id
    labels = list(r.labels)
    labels[a1] = 7
    assert "is not its input id" in broken(labels, r.assistant_spans)[0]


def test_template_error_on_one_row_does_not_stop_the_others(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("gemma")
    rows = [
        Conversation.make([Message(m["role"], m["content"]) for m in CONV], Source("a.jsonl", 1)),
        [SYSTEM, *CONV],  # gemma: system role not supported
        [CONV[0], CONV[0], CONV[1]],  # roles do not alternate
        [CONV[0]],  # nothing to train
        CONV,
    ]
    out = list(batch.render_many(tok, rows, workers=1, batch_size=2))
    assert [r.index for r in out] == [0, 1, 2, 3, 4]
    assert out[0].ok and out[4].ok and out[0].id == rows[0].id
    assert "System role not supported" in out[1].error
    assert "alternate" in out[2].error
    assert out[3].error == "no assistant message to train on"
    single = mask.render_and_mask(tok, [SYSTEM, *CONV])
    assert single.rendered is None and "System role" in single.error


UNICODE = ["Ça coûte 5 €.", "日本語のテキスト", "emoji 🙂👍🏽 done", "e\u0301 (not NFC)", "tab\tand\r\nCRLF", "  padded  "]


def test_render_many_matches_single_and_pool(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml")
    rows = [[{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"It is {2 * i}."}] for i in range(40)]
    rows += [[{"role": "user", "content": u}, {"role": "assistant", "content": u + " → " + u}] for u in UNICODE]
    single = [mask.render_and_mask(tok, r) for r in rows]
    for workers in (1, 2):
        many = list(batch.render_many(tok, rows, workers=workers, batch_size=3))
        assert [m.rendered.input_ids for m in many] == [s.rendered.input_ids for s in single]
        assert [m.rendered.labels for m in many] == [s.rendered.labels for s in single]
        assert [m.problems for m in many] == [s.problems for s in single]


def test_fast_offsets_match_the_tokenizers(tiny_tokenizer, fixtures_dir) -> None:
    from workbench.template.tokenizer import load_tokenizer

    texts = [f"<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n{u} x{u}<|im_end|>\n" for u in UNICODE]
    for tok in (tiny_tokenizer("chatml"), load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")):
        ctx = mask._Context(tok).codec
        assert ctx.byte_lengths is not None
        ids, offs = ctx.encode_many(texts)
        for text, i, off in zip(texts, ids, offs):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            assert i == enc["input_ids"]
            for tid, mine, (c, d) in zip(i, zip(off.starts, off.ends), enc["offset_mapping"]):
                if tok.decode([tid]) == text[c:d]:  # a token of whole characters: exactly the tokenizer's offsets
                    assert mine == (c, d)
                else:  # a byte fragment: it lies within the characters the tokenizer names
                    assert c <= mine[0] and mine[1] <= max(d, mine[0] + 1)


def test_prefix_ids_equal_encoding_the_prefix(tiny_tokenizer, fixtures_dir) -> None:
    """A prompt's ids taken from the full render's (added tokens split first) are exactly what encoding it gives,
    wherever the prefix ends: after a role header, inside a word, inside a multi-byte character."""
    import random

    from workbench.template.tokenizer import load_tokenizer

    rng = random.Random(0)
    texts = [
        f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n\n {u} x{u}<|im_end|>\n"
        for u in UNICODE
    ] * 8
    texts += ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi  there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"] * 80
    toks = [tiny_tokenizer("chatml"), tiny_tokenizer("llama3")]
    toks += [load_tokenizer(fixtures_dir / "tokenizers" / name) for name in ("qwen2.5", "qwen3")]
    for tok in toks:
        codec = mask._Context(tok).codec
        ids, offs = codec.encode_many(texts)  # 64+ texts: the byte-level path, which prefix_ids needs
        derived = 0
        for text, i, off in zip(texts, ids, offs):
            cuts = {len(text), *(rng.randrange(len(text) + 1) for _ in range(4))}
            cuts |= {m + len("assistant\n") for m in range(len(text)) if text.startswith("assistant\n", m)}
            for cut in cuts:
                got = codec.prefix_ids(text, i, off, text[:cut])
                if got is not None:
                    derived += 1
                    assert got == tok(text[:cut], add_special_tokens=False)["input_ids"], (tok.name_or_path, text[:cut])
            assert codec.prefix_ids(text, i, off, text[:-1] + "\x00") is None  # not a prefix: the caller encodes it
        assert derived > len(texts)  # every text with an added token before its end


def test_prefix_ids_decline_tokenizers_without_the_byte_level_path(fixtures_dir) -> None:
    from workbench.template.tokenizer import load_tokenizer

    from workbench.template.offsets import Codec

    tok = load_tokenizer(fixtures_dir / "tokenizers" / "llama2")
    codec = Codec(tok)
    texts = ["[INST] Hi there [/INST] Hello!</s>"] * 80
    ids, offs = codec.encode_many(texts)
    assert codec.prefix_ids(texts[0], ids[0], offs[0], "[INST] Hi there [/INST]") is None


def test_max_length_truncates_and_still_verifies(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml")
    whole = mask.render_and_mask(tok, CONV)
    n = whole.rendered.assistant_spans[-1][0] + 2  # cut inside the last answer
    res = list(batch.render_many(tok, [CONV], max_length=n, workers=1))[0]
    assert len(res.rendered.input_ids) == n and res.length == len(whole.rendered.input_ids)
    assert res.problems == [] and any("truncated" in note for note in res.notes)


def test_no_chat_template_is_an_error_per_row(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("chatml", chat_template=False)
    assert "no chat template" in mask.render_and_mask(tok, CONV).error
    assert all("no chat template" in r.error for r in batch.render_many(tok, [CONV, CONV]))


def test_end_of_turn_ids(tiny_tokenizer, fixtures_dir) -> None:
    from workbench.template.tokenizer import load_tokenizer

    tok = tiny_tokenizer("gemma")
    assert set(tok.convert_ids_to_tokens(mask.end_of_turn_ids(tok))) == {"<eos>", "<end_of_turn>"}
    qwen = load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")
    assert mask.end_of_turn_ids(qwen)[:2] == [151645, 151643]


def test_mask_command(tiny_model_dir, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from workbench.cli import app

    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps({"messages": c}) for c in (CONV, [SYSTEM, *CONV])) + "\n")
    folder = str(tiny_model_dir("chatml", model=False))
    runner = CliRunner()
    res = runner.invoke(app, ["mask", str(data), "--model", folder, "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    assert all(r["problems"] == [] and r["agree"] is True for r in rows)
    assert len(rows[0]["tokens"]) == len(rows[0]["labels"]) == len(rows[0]["input_ids"])
    res = runner.invoke(app, ["mask", str(data), "--model", folder, "--index", "1", "--strategy", "last"])
    assert res.exit_code == 0, res.output
    assert "verified" in res.stdout and "10·plus·20·is·30." in res.stdout and "↵" in res.stdout
    res = runner.invoke(app, ["mask", str(data), "--model", folder, "--index", "9"])
    assert res.exit_code != 0


def test_rows_over_the_character_cap_are_not_tokenised(tiny_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from workbench.template import batch

    monkeypatch.setattr(batch, "MAX_CHARS", 50)
    rows = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * n}] for n in (10, 60, 20)]
    results = list(batch.render_many(tiny_tokenizer("chatml"), rows, workers=1))
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error == batch.TOO_LONG and results[1].rendered is None
    assert batch.render_bounded(tiny_tokenizer("chatml"), rows[1]).error == batch.TOO_LONG
    assert [len(b) for b in batch._batches([rows[0]] * 7, 256)] == [7]
    monkeypatch.setattr(batch, "BATCH_CHARS", 30)  # a batch closes once it holds this many characters
    assert [len(b) for b in batch._batches([rows[0]] * 7, 256)] == [3, 3, 1]
@pytest.mark.parametrize("name", ["trl-qwen3_training", "trl-phi3_training", "trl-gptoss_training", "trl-deepseekv3_training"])
def test_trl_training_templates_train_exactly_what_transformers_marks(fixtures_dir, name: str) -> None:
    # Fact: with {% generation %} tags, the trained ids are exactly those transformers'
    # return_assistant_tokens_mask marks (what TRL's assistant_only_loss trains), token for token, on
    # TRL's own training templates: the "\n" after <|im_end|>, Phi's "▁\n" and <|endoftext|>, gpt-oss's
    # "<|start|>assistant" header and DeepSeek's "<｜Assistant｜>" included.
    import copy
    from pathlib import Path

    from workbench.template.tokenizer import load_tokenizer

    data = Path(__file__).parent / "data" / "templates"
    if name == "trl-phi3_training":
        tok = load_tokenizer(fixtures_dir / "tokenizers" / "phi-3" / "ggml-vocab-phi-3.gguf")
    else:
        tok = copy.deepcopy(load_tokenizer(fixtures_dir / "tokenizers" / "qwen3"))
        if name == "trl-gptoss_training":
            tok.add_special_tokens({"additional_special_tokens": ["<|start|>", "<|message|>", "<|channel|>", "<|end|>", "<|return|>"], "eos_token": "<|return|>"})
        if name == "trl-deepseekv3_training":
            tok.add_special_tokens({"additional_special_tokens": ["<｜User｜>", "<｜Assistant｜>"], "eos_token": "<｜end▁of▁sentence｜>", "bos_token": "<｜begin▁of▁sentence｜>"})
    path = fixtures_dir / "templates" / f"{name}.jinja"
    tok.chat_template = (path if path.exists() else data / f"{name}.jinja").read_text(encoding="utf-8")
    thought = [*CONV[:3], {**CONV[3], "reasoning_content": "Ten and twenty make thirty."}]
    # Phi-3's template reads no reasoning field: workbench writes the reasoning inline (reasoning_inline says so)
    # where transformers, given reasoning_content, drops it; so the reasoning row is compared on the others only
    for conv in (CONV[:2], CONV) if name == "trl-phi3_training" else (CONV[:2], CONV, thought):
        res = mask.render_and_mask(tok, conv)
        assert res.derivation == "generation_tags" and res.agree is True and res.problems == [], (res.problems, res.disagreement)
        raw = tok.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
        assert raw["input_ids"] == res.rendered.input_ids
        assert [i if m else -100 for i, m in zip(raw["input_ids"], raw["assistant_masks"])] == res.rendered.labels


def test_rendered_runs_equal_scanning_the_labels() -> None:
    """The one-comparison path for a mask's own labels finds exactly the runs a scan finds, for any spans."""
    import random

    from workbench.records import Rendered
    from workbench.template.verification import IGNORE, rendered_runs, trained_runs

    rng = random.Random(0)
    fast = 0
    for _ in range(5000):
        n = rng.randint(0, 12)
        ids = [rng.randint(0, 5) for _ in range(n)]
        labels = [rng.choice([IGNORE, x, x, 9]) for x in ids]
        if rng.random() < 0.5:
            spans = trained_runs(labels)
        else:
            spans = [(a, rng.randint(a, n + 2)) for a in (rng.randint(-2, n + 1) for _ in range(rng.randint(0, 3)))]
        r = Rendered(ids, labels, spans, "")
        assert rendered_runs(r) == trained_runs(labels), (ids, labels, spans)
        fast += bool(spans) and rendered_runs(r) == [tuple(s) for s in spans]
    assert fast > 1000


def test_whole_offsets_slice_the_text_a_decode_gives(tiny_tokenizer, fixtures_dir) -> None:
    """ASCII text on the byte-level path: any token range's text is the render's slice, exactly what decoding gives
    (the check reads trained regions that way); other text keeps decoding."""
    import random

    from workbench.template.tokenizer import load_tokenizer

    rng = random.Random(1)
    pieces = ["Hi", " x", "  \n", "tab\t", "12,345", "end."]
    texts = ["<|im_start|>user\n" + " ".join(rng.choice(pieces) for _ in range(20)) + "<|im_end|>\n" for _ in range(70)]
    texts += [f"<|im_start|>user\n{u}<|im_end|>\n" for u in UNICODE]
    for tok in (tiny_tokenizer("chatml"), load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")):
        codec = mask._Context(tok).codec
        ids, offs = codec.encode_many(texts)
        for text, i, off in zip(texts, ids, offs):
            assert off.whole == text.isascii()
            if off.whole:
                for _ in range(10):
                    a = rng.randrange(len(i))
                    c = rng.randrange(a + 1, len(i) + 1)
                    assert text[off.starts[a] : off.ends[c - 1]] == codec.decode_many([i[a:c]])[0]
