"""Small tokenizers and models built locally in seconds: a real family's special tokens and chat template, no hub."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TINY_VERSION = 1  # bump when the corpus, the trainer settings or the templates change
MARKER = ".workbench-tiny.json"

# The Qwen2 / Llama-3 pre-tokenizer split; Qwen2Tokenizer rebuilds exactly this one, so a
# tiny ChatML tokenizer survives being reloaded as Qwen2Tokenizer unchanged.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class Family:
    """A model family's special tokens and how its tokenizer and template use them."""

    name: str
    template: str  # file in workbench/template/jinja/
    specials: tuple[str, ...]  # in id order, ids 0.. (before the trained vocabulary)
    eos: str
    pad: str | None
    bos: str | None
    unk: str | None
    add_bos: bool  # does the tokenizer itself prepend BOS on encode
    end_of_turn: str  # the token that closes an assistant turn
    generation_eos: tuple[str, ...]  # generation_config.json eos_token_id, as tokens


FAMILIES: dict[str, Family] = {
    "chatml": Family(
        name="chatml",
        template="chatml.jinja",
        specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        pad="<|endoftext|>",
        bos=None,
        unk=None,
        add_bos=False,
        end_of_turn="<|im_end|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    "llama3": Family(
        name="llama3",
        template="llama3.jinja",
        specials=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
            "<|finetune_right_pad_id|>",
        ),
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        bos="<|begin_of_text|>",
        unk=None,
        add_bos=True,
        end_of_turn="<|eot_id|>",
        generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
    ),
    "mistral": Family(
        name="mistral",
        template="mistral.jinja",
        specials=("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<pad>"),
        eos="</s>",
        pad="<pad>",
        bos="<s>",
        unk="<unk>",
        add_bos=True,
        end_of_turn="</s>",
        generation_eos=("</s>",),
    ),
    "gemma": Family(
        name="gemma",
        template="gemma.jinja",
        specials=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        eos="<eos>",
        pad="<pad>",
        bos="<bos>",
        unk="<unk>",
        add_bos=True,
        end_of_turn="<end_of_turn>",
        generation_eos=("<eos>", "<end_of_turn>"),
    ),
}

_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")

_WORDS = """
the of and to in is that it for on with as was at by this be are from or have an they which one you
had not but what all were when we there can been has more if will no would so who out up into time
them about some could other then than its only two first may like over new these very after use
good know how also where our most made just back any work year people most well way even want
because give day water find long down think help name line right world place answer question
number small large between write read learn teach model data train token loss mask label batch
step epoch rate layer weight value test check clean file row column text word chat user assistant
system message turn reply prompt response example problem solve math add total each many much
less few three four five six seven eight nine ten hundred thousand apple book city river house
friend school family money market price cost buy sell pay week month hour minute morning night
please thank sorry yes hello hi sure here there today tomorrow yesterday always never often sometimes
quick brown fox jumps lazy dog red blue green black white short tall old young happy sad fast slow
function return value list dict string print import class def self none true false error result
explain describe summarize translate list reason because therefore however first second finally
""".split()

_SENTENCES = [
    "What is {a} plus {b}? {a} plus {b} is {c}.",
    "Please {v} the {n} and {v} the {n2}.",
    "The {adj} {n} can {v} the {n2} {adv}.",
    "Can you {v} this {n} for me? Sure, here is the {n}.",
    "If a {n} costs {a} dollars and you buy {b}, you pay {c} dollars in total.",
    "def {v}_{n}(x):\n    return x + {a}\n",
    "for i in range({a}):\n    print(i, '{n}')\n",
    "{{\"role\": \"user\", \"content\": \"{v} the {n}\"}}",
    "Step {a}: {v} the {n}.\nStep {b}: {v} the {n2}.\n\n#### {c}",
    "- {n}\n- {n2}\n- {adj} {n}\n",
    "I think the {n} is {adj}, but the {n2} is not.",
    "Natalia sold {a} clips in April and {b} in May, {c} clips altogether.",
]


def corpus(lines: int = 3000, seed: int = 0) -> list[str]:
    """The built-in training text: English sentences, arithmetic, code and lists (deterministic)."""
    rng = random.Random(seed)
    words = _WORDS
    out = [" ".join(words), " ".join(w.capitalize() for w in words)]
    for _ in range(lines):
        a, b = rng.randint(0, 120), rng.randint(0, 120)
        out.append(
            rng.choice(_SENTENCES).format(
                a=a,
                b=b,
                c=a + b,
                v=rng.choice(words),
                n=rng.choice(words),
                n2=rng.choice(words),
                adj=rng.choice(words),
                adv=rng.choice(words),
            )
        )
    return out


def template_text(
    family: str,
    *,
    generation_tags: bool = True,
    default_system: str | None = None,
    system_position: str = "last",
) -> str:
    """The family's chat template as shipped in workbench/template/jinja/, with the chosen variations."""
    fam = _family(family)
    text = resources.files("workbench.template.jinja").joinpath(fam.template).read_text(encoding="utf-8")
    if fam.name == "mistral":
        text = text.replace("system_first", "true" if system_position == "first" else "false")
    if not generation_tags:
        text = _GENERATION_TAG.sub("", text)
    if default_system is not None:
        # Inject a system turn whenever the conversation has none, as Qwen2.5's template does.
        inject = (
            "{%- if messages[0].role != 'system' %}"
            "{%- set messages = [{'role': 'system', 'content': " + json.dumps(default_system) + "}] + messages %}"
            "{%- endif %}\n"
        )
        text = inject + text
    return text


def _family(family: str) -> Family:
    try:
        return FAMILIES[family]
    except KeyError:
        raise WorkbenchError(
            f"unknown tokenizer family {family!r}", f"choose one of: {', '.join(FAMILIES)}"
        ) from None


def build_tokenizer(
    family: str = "chatml",
    *,
    vocab_size: int = 2048,
    chat_template: bool | str = True,
    generation_tags: bool = True,
    pad_equals_eos: bool = False,
    default_system: str | None = None,
    system_position: str = "last",
    add_bos: bool | None = None,
) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE on the built-in corpus and wrap it with ``family``'s specials and template.

    ``chat_template``: True for the family's template, False for none, or a template string.
    ``add_bos``: whether encoding prepends BOS (None: the family's habit).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import TokenizersBackend

    fam = _family(family)
    if system_position not in ("first", "last"):
        raise WorkbenchError(f"system_position must be 'first' or 'last', not {system_position!r}")
    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in fam.specials],
    )
    tok.train_from_iterator(corpus(), trainer=trainer)

    if isinstance(chat_template, str):
        template: str | None = chat_template
    elif chat_template:
        template = template_text(
            family, generation_tags=generation_tags, default_system=default_system, system_position=system_position
        )
    else:
        template = None
    kwargs: dict[str, Any] = {
        "eos_token": fam.eos,
        "pad_token": fam.eos if pad_equals_eos else fam.pad,
        "add_bos_token": fam.add_bos if add_bos is None else add_bos,
        "add_eos_token": False,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
    }
    if fam.bos:
        kwargs["bos_token"] = fam.bos
    if fam.unk:
        kwargs["unk_token"] = fam.unk
    if template is not None:
        kwargs["chat_template"] = template
    tokenizer = TokenizersBackend(tokenizer_object=tok, **kwargs)
    # Reloads keep this exact tokenizer instead of a family class that rebuilds the pipeline.
    tokenizer.init_kwargs["tokenizer_class"] = "TokenizersBackend"
    return tokenizer


def build_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    arch: str = "llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 4096,
    seed: int = 0,
    generation_eos: list[int] | None = None,
) -> Any:
    """A randomly initialised causal LM sized to ``tokenizer``'s vocabulary: Llama- or Qwen2-shaped, or hybrid
    like Qwen3.5 (``qwen3_5``: Gated DeltaNet linear attention, full attention every 4th and last layer),
    or a Mamba-2 SSM (``mamba2``)."""
    import torch
    import transformers as T
    from transformers import AutoModelForCausalLM, GenerationConfig

    if arch not in ARCHS:
        raise WorkbenchError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
    vocab = -(-len(tokenizer) // 64) * 64  # rounded up, as real checkpoints pad the embedding
    common: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate or hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": max_positions,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    if arch == "qwen3_5":
        d = hidden // heads
        kinds = ["full_attention" if (i + 1) % 4 == 0 or i == layers - 1 else "linear_attention" for i in range(layers)]
        config = T.Qwen3_5TextConfig(**common, head_dim=d, linear_key_head_dim=d, linear_value_head_dim=d,
                                     linear_num_key_heads=kv_heads, linear_num_value_heads=heads, layer_types=kinds)  # fmt: skip
    elif arch == "mamba2":
        ssm = {k: common[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "bos_token_id", "eos_token_id", "pad_token_id")}
        config = T.Mamba2Config(**ssm, state_size=16, expand=2, head_dim=16, num_heads=2 * hidden // 16, n_groups=1, chunk_size=64,
                                tie_word_embeddings=True)  # fmt: skip
    else:
        config = (T.LlamaConfig if arch == "llama" else T.Qwen2Config)(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    eos_ids = generation_eos if generation_eos is not None else [tokenizer.eos_token_id]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids if len(eos_ids) > 1 else eos_ids[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def options_hash(family: str, model: bool, opts: dict[str, Any]) -> str:
    payload = json.dumps({"v": TINY_VERSION, "family": family, "model": model, **opts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_TOKENIZER_OPTS = {
    "vocab_size",
    "chat_template",
    "generation_tags",
    "pad_equals_eos",
    "default_system",
    "system_position",
    "add_bos",
}
ARCHS = ("llama", "qwen2", "qwen3_5", "mamba2")
_MODEL_OPTS = {"arch", "hidden", "layers", "heads", "kv_heads", "intermediate", "max_positions", "seed"}


def build(dir: str | Path, family: str = "chatml", *, model: bool = True, **opts: Any) -> Path:
    """Write a tiny tokenizer (and model) for ``family`` into ``dir``; reuse it when built with the same options.

    Tokenizer options: vocab_size, chat_template, generation_tags, pad_equals_eos, default_system,
    system_position, add_bos. Model options: arch ("llama" | "qwen2"), hidden, layers, heads, kv_heads,
    intermediate, max_positions, seed. Without a model, config.json and generation_config.json are
    still written so the folder carries the model's stop tokens.
    """
    unknown = set(opts) - _TOKENIZER_OPTS - _MODEL_OPTS
    if unknown:
        raise WorkbenchError(f"unknown tiny option(s): {', '.join(sorted(unknown))}")
    fam = _family(family)
    dest = Path(dir)
    digest = options_hash(family, model, opts)
    marker = dest / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("hash") == digest:
                return dest
        except (OSError, ValueError):
            pass
    if dest.exists() and any(dest.iterdir()) and not marker.is_file():
        raise WorkbenchError(f"{dest} exists and was not made by workbench tiny", "give an empty or new folder")

    tokenizer = build_tokenizer(family, **{k: v for k, v in opts.items() if k in _TOKENIZER_OPTS})
    gen_eos = [tokenizer.convert_tokens_to_ids(t) for t in fam.generation_eos]
    from workbench.outputs import atomic_path

    with atomic_path(dest) as tmp:  # a half-written folder never appears at dest
        tmp.mkdir()
        tokenizer.save_pretrained(tmp)
        model_opts = {k: v for k, v in opts.items() if k in _MODEL_OPTS}
        if model:
            m = build_model(tokenizer, generation_eos=gen_eos, **model_opts)
            m.save_pretrained(tmp)
        else:
            _write_configs(tmp, tokenizer, gen_eos, model_opts.get("arch", "llama"))
        _pin_tokenizer_class(tmp)
        (tmp / MARKER).write_text(json.dumps({"hash": digest, "family": family, "model": model, "options": opts}, default=str))
    return dest


def _write_configs(dest: Path, tokenizer: PreTrainedTokenizerBase, gen_eos: list[int], arch: str) -> None:
    """config.json and generation_config.json alone, for a tokenizer-only folder."""
    config = {
        "architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"],
        "model_type": arch,
        "vocab_size": -(-len(tokenizer) // 64) * 64,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    generation = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": gen_eos if len(gen_eos) > 1 else gen_eos[0],
        "pad_token_id": tokenizer.pad_token_id,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")


def _pin_tokenizer_class(dest: Path) -> None:
    """Name TokenizersBackend in tokenizer_config.json so AutoTokenizer keeps the saved pipeline."""
    path = dest / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "TokenizersBackend"
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
