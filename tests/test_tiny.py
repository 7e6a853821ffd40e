"""workbench.train.tiny: tiny family tokenizers train in-process, carry their specials, and survive a save/reload."""

from __future__ import annotations

import json

import pytest

from workbench.train import tiny
from workbench.errors import WorkbenchError

CONV = [
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "2 plus 3 is 5."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You are welcome."},
]
TEXT = "Hello world!\n\n  def f(x):\n    return x + 42  # done\t ünïcode <|im_end|> [INST]"


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
def test_family_specials_and_template(tiny_tokenizer, family: str) -> None:
    fam = tiny.FAMILIES[family]
    tok = tiny_tokenizer(family)
    assert 1000 <= len(tok) <= 4096
    assert tok.eos_token == fam.eos
    assert tok.bos_token == fam.bos
    for special in fam.specials:
        assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(special)) == special
        assert tok(special, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(special)]
    rendered = tok.apply_chat_template(CONV, tokenize=False)
    assert fam.end_of_turn in rendered
    assert "{% generation %}" in tok.chat_template or "{%- generation %}" in tok.chat_template
    ids = tok(rendered, add_special_tokens=True)["input_ids"]
    if fam.add_bos:  # template writes BOS and the tokenizer adds one: the double-BOS trap is real
        assert ids[:2] == [tok.bos_token_id, tok.bos_token_id]
    else:
        assert ids[0] != tok.bos_token_id or tok.bos_token_id is None


def test_gemma_raises_on_system_and_non_alternating(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("gemma")
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template([{"role": "system", "content": "x"}, *CONV], tokenize=False)
    with pytest.raises(Exception, match="alternate"):
        tok.apply_chat_template([CONV[0], CONV[0]], tokenize=False)


def test_mistral_folds_system_into_a_user_turn(tiny_tokenizer) -> None:
    conv = [{"role": "system", "content": "Be brief."}, *CONV]
    last = tiny_tokenizer("mistral").apply_chat_template(conv, tokenize=False)
    first = tiny_tokenizer("mistral", system_position="first").apply_chat_template(conv, tokenize=False)
    assert last.index("Be brief.") > last.index("2 plus 3 is 5.")
    assert first.index("Be brief.") < first.index("2 plus 3 is 5.")


def test_variants(tiny_tokenizer) -> None:
    assert tiny_tokenizer("chatml", chat_template=False).chat_template is None
    assert "{% generation" not in tiny_tokenizer("chatml", generation_tags=False).chat_template.replace("{%-", "{%")
    tok = tiny_tokenizer("chatml", pad_equals_eos=True)
    assert tok.pad_token_id == tok.eos_token_id
    tok = tiny_tokenizer("chatml", default_system="You are a tiny model.")
    assert tok.apply_chat_template(CONV, tokenize=False).startswith("<|im_start|>system\nYou are a tiny model.<|im_end|>\n")
    with pytest.raises(WorkbenchError, match="unknown tokenizer family"):
        tiny.build_tokenizer("nope")


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
def test_reload_round_trips_encodings(tiny_tokenizer, tiny_model_dir, family: str) -> None:
    from transformers import AutoTokenizer

    tok = tiny_tokenizer(family)
    folder = tiny_model_dir(family, model=False)
    again = AutoTokenizer.from_pretrained(folder)
    text = TEXT + tok.apply_chat_template(CONV if family != "mistral" else CONV, tokenize=False)
    for special in (True, False):
        assert again(text, add_special_tokens=special)["input_ids"] == tok(text, add_special_tokens=special)["input_ids"]
    assert again.chat_template == tok.chat_template
    assert (again.eos_token, again.bos_token, again.pad_token) == (tok.eos_token, tok.bos_token, tok.pad_token)
    gen = json.loads((folder / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert [tok.convert_ids_to_tokens(i) for i in eos] == list(tiny.FAMILIES[family].generation_eos)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_model_loads_and_runs(tiny_model_dir, arch: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    folder = tiny_model_dir("chatml", arch=arch)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == arch
    ref = tiny.build_tokenizer("chatml")
    # qwen2 configs make AutoTokenizer pick Qwen2Tokenizer, which rebuilds the pipeline: encodings must not move
    assert tok(TEXT)["input_ids"] == ref(TEXT)["input_ids"]
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[-1] >= len(tok)


def test_build_is_cached_and_refuses_foreign_folders(tmp_path) -> None:
    folder = tiny.build(tmp_path / "t", "chatml", model=False)
    stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    assert tiny.build(tmp_path / "t", "chatml", model=False) == folder
    assert (folder / "tokenizer.json").stat().st_mtime_ns == stamp
    tiny.build(tmp_path / "t", "chatml", model=False, pad_equals_eos=True)  # new options: rebuilt in place
    assert json.loads((folder / tiny.MARKER).read_text())["options"] == {"pad_equals_eos": True}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(WorkbenchError, match="not made by workbench tiny"):
        tiny.build(tmp_path / "mine", "chatml", model=False)
    with pytest.raises(WorkbenchError, match="unknown tiny option"):
        tiny.build(tmp_path / "x", "chatml", colour="red")
