"""workbench.template.chat: loading tokenizers (folder, GGUF, hub name), template overrides, renders, stop-token facts."""

from __future__ import annotations

import pytest

from workbench import template as T
from workbench.errors import WorkbenchError
from workbench.records import Conversation, Message, Source

CONV = [
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "2 plus 3 is 5."},
]


def test_load_folder_and_override_template(tiny_model_dir, tmp_path) -> None:
    folder = tiny_model_dir("chatml", model=False)
    tok = T.load_tokenizer(folder)
    assert T.render(tok, CONV).startswith("<|im_start|>user\n")
    custom = tmp_path / "my.jinja"
    custom.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
    tok = T.load_tokenizer(str(folder), template=custom)
    assert T.render(tok, CONV) == "[user] What is 2 plus 3?\n[assistant] 2 plus 3 is 5.\n"
    tok = T.load_tokenizer(folder, template="{{ messages[0].content }}")
    assert T.render(tok, CONV) == "What is 2 plus 3?"
    with pytest.raises(WorkbenchError, match="template file not found"):
        T.load_tokenizer(folder, template=tmp_path / "missing.jinja")


def test_load_errors_are_clean(tmp_path, monkeypatch) -> None:
    with pytest.raises(WorkbenchError, match="no tokenizer at"):
        T.load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="holds no tokenizer files"):
        T.load_tokenizer(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WorkbenchError, match="hub is not reachable") as e:
        T.load_tokenizer("some-org/some-model-that-is-not-cached")
    assert e.value.hint and "local folder" in e.value.hint


def test_render_accepts_records_and_reports_template_errors(tiny_tokenizer) -> None:
    tok = tiny_tokenizer("gemma")
    conv = Conversation.make([Message("user", "hi"), Message("assistant", "hello")], Source("x.jsonl", 1))
    assert "<start_of_turn>model\nhello<end_of_turn>" in T.render(tok, conv)
    assert T.render(tok, conv.messages[:1], add_generation_prompt=True).endswith("<start_of_turn>model\n")
    with pytest.raises(T.TemplateError, match="System role not supported"):
        T.render(tok, [{"role": "system", "content": "x"}, *CONV])
    with pytest.raises(T.TemplateError, match="no chat template"):
        T.render(tiny_tokenizer("chatml", chat_template=False), CONV)


def test_stop_tokens_from_tiny_folder(tiny_model_dir) -> None:
    tok = T.load_tokenizer(tiny_model_dir("gemma", model=False))
    facts = T.stop_tokens(tok)
    assert facts.tokenizer_eos == "<eos>"
    assert T.token_strings(tok, facts.generation_eos_ids or []) == ["<eos>", "<end_of_turn>"]
    assert facts.config_eos_ids == [facts.tokenizer_eos_id]
    assert facts.adds_bos and facts.bos == "<bos>"
    assert facts.all_eos_ids() == [facts.tokenizer_eos_id, tok.convert_tokens_to_ids("<end_of_turn>")]


def test_real_qwen_fixture(fixtures_dir) -> None:
    tok = T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")
    text = T.render(tok, CONV)
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")  # injected default
    facts = T.stop_tokens(tok)
    assert facts.generation_eos_ids == [151645, 151643]
    assert facts.config_eos_ids == [151645]
    assert not facts.adds_bos and facts.pad == "<|endoftext|>"
    tok = T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5", template=fixtures_dir / "templates" / "trl-qwen2_5_training.jinja")
    assert T.has_generation_tags(tok)


def test_gguf_file(fixtures_dir) -> None:
    tok = T.load_tokenizer(fixtures_dir / "tokenizers" / "phi-3" / "ggml-vocab-phi-3.gguf")
    assert tok.chat_template and "<|end|>" in T.render(tok, CONV)


TEMPLATES = __import__("pathlib").Path(__file__).parent / "data" / "templates"


def test_template_kwargs_reach_every_render(fixtures_dir) -> None:
    # Fact: Qwen3.5's generation prompt opens "<think>\n"; with enable_thinking false it writes the empty
    # block "<think>\n\n</think>\n\n" itself. The kwargs set at load reach render, Renderer and the mask.
    from workbench.template import mask

    plain = T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen3", template=TEMPLATES / "qwen3.5.jinja")
    off = T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen3", template=TEMPLATES / "qwen3.5.jinja", template_kwargs={"enable_thinking": False})
    assert T.template_kwargs_of(plain) == {} and T.template_kwargs_of(off) == {"enable_thinking": False}
    assert T.render(plain, CONV[:1], add_generation_prompt=True).endswith("<|im_start|>assistant\n<think>\n")
    assert T.render(off, CONV[:1], add_generation_prompt=True).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert T.Renderer(off).render(CONV[:1], add_generation_prompt=True)[0] == T.render(off, CONV[:1], add_generation_prompt=True)
    # the same tokenizer object with new kwargs gets a fresh mask context
    T.set_template_kwargs(plain, {"enable_thinking": False})
    assert mask._context(plain).renderer.template_kwargs == {"enable_thinking": False}


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "must be a JSON object"), ("{oops", "not valid JSON"), ('{"messages": []}', "set by workbench itself"),
     ('{"a-b": 1}', "not a name a template can read")],
)  # fmt: skip
def test_template_kwargs_errors_name_the_flag(text: str, message: str) -> None:
    from workbench.errors import UsageError

    with pytest.raises(UsageError, match=message) as e:
        T.parse_template_kwargs(text)
    assert "--template-kwargs" in e.value.message
    assert T.parse_template_kwargs(None) == {} and T.parse_template_kwargs('{"reasoning_effort": "low"}') == {"reasoning_effort": "low"}


def test_reasoning_reaches_templates_with_no_reasoning_field_inline(tiny_tokenizer, fixtures_dir) -> None:
    # ChatML reads no reasoning field: the reasoning is written back into the content as a <think> block.
    # Qwen3 reads reasoning_content: it gets the field and writes the block itself.
    conv = [CONV[0], {"role": "assistant", "content": "5.", "reasoning_content": "2 and 3 make 5"}]
    chatml = T.Renderer(tiny_tokenizer("chatml"))
    assert chatml.reasoning_mode == "inline"
    assert "<|im_start|>assistant\n<think>\n2 and 3 make 5\n</think>\n\n5.<|im_end|>" in chatml.render(conv)[0]
    qwen3 = T.Renderer(T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5", template=fixtures_dir / "templates" / "Qwen-Qwen3-0.6B.jinja"))
    assert qwen3.reasoning_mode == "field"
    assert "<|im_start|>assistant\n<think>\n2 and 3 make 5\n</think>\n\n5.<|im_end|>" in qwen3.render(conv)[0]


def test_a_folder_loads_without_torch_once_its_class_is_known(fixtures_dir, tmp_path) -> None:
    # Fact: AutoTokenizer's config machinery imports torch; the class it picked for a folder is remembered
    # (WORKBENCH_CACHE) and loaded directly the next time, the same tokenizer without the torch import.
    import json
    import os
    import subprocess
    import sys

    code = (
        "import sys; from workbench.template import load_tokenizer\n"
        f"t = load_tokenizer({str(fixtures_dir / 'tokenizers' / 'qwen3')!r})\n"
        "print(type(t).__name__, 'torch' in sys.modules, t.encode('Hello <think>x</think>'))\n"
    )
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path)}
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split(maxsplit=2) for _ in range(2))
    assert first[0] == second[0] == "Qwen2Tokenizer" and first[2] == second[2]
    assert (first[1], second[1]) == ("True", "False")
    assert list(json.loads((tmp_path / "tokenizer-classes.json").read_text()).values()) == ["transformers.models.qwen2.tokenization_qwen2:Qwen2Tokenizer"]


def test_renderer_steps_render_what_transformers_renders(fixtures_dir) -> None:
    """The Renderer converts a row's messages once for all its prefix renders; every render, spans included,
    equals transformers' render_jinja_template, for every fixture template, and an edited message is seen."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from workbench.template.chat import ChatMessages, Renderer

    tok = T.load_tokenizer(fixtures_dir / "tokenizers" / "qwen2.5")
    tools = [{"type": "function", "function": {"name": "add", "description": "Add", "parameters": {"type": "object", "properties": {}}}}]
    rows = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"},
         {"role": "assistant", "content": "5.", "reasoning_content": "Two and three."}, {"role": "user", "content": "10+20?"},
         {"role": "assistant", "content": "30."}],
    ]  # fmt: skip
    tooled = ChatMessages([dict(m) for m in rows[1]])
    tooled.tools = tools
    rows.append(tooled)
    checked = 0
    for path in sorted((fixtures_dir / "templates").glob("*.jinja")):
        tok.chat_template = path.read_text(encoding="utf-8")
        r = Renderer(tok)
        assert r._steps is not None, path.name
        for msgs in rows:
            for k in range(1, len(msgs) + 1):
                for gen in (False, True):
                    spans = r.has_tags and not gen
                    try:
                        mine = r.render(msgs[:k], add_generation_prompt=gen, spans=spans)
                    except T.TemplateError:
                        mine = None
                    try:  # as given to the template: reasoning inline where it reads no reasoning field (Renderer.prepare)
                        texts, idx = render_jinja_template(
                            conversations=[list(r.prepare(msgs[:k]))], tools=getattr(msgs, "tools", None), chat_template=r.template,
                            return_assistant_tokens_mask=spans, add_generation_prompt=gen, **r.kwargs,
                        )  # fmt: skip
                        theirs = (texts[0], [tuple(s) for s in idx[0]] if spans else [])
                    except Exception:  # noqa: BLE001
                        theirs = None
                    assert mine == theirs, (path.name, k, gen)
                    checked += theirs is not None
        # an edited message renders as edited, not from what was converted before
        msgs = [dict(m) for m in rows[0]]
        before = r.render(msgs)[0]
        msgs[1]["content"] = "Changed."
        after = r.render(msgs[:2])[0]
        assert "Changed." in after and after != before, path.name
    assert checked > 200
    # tool schemas stay with a row whose reasoning goes inline
    tok.chat_template = (fixtures_dir / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    r = Renderer(tok)
    assert r.reasoning_mode == "inline" and '"name": "add"' in r.render(tooled)[0]
