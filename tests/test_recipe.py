"""Recipes: every shipped one loads and says how to run it; unknown keys and bad values name their dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import recipe as rc
from workbench.errors import WorkbenchError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for p in (REPO / "recipes").glob("*.yaml"))


def test_recipes_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert "demo-cpu.yaml" in names
    assert "qwen3.5-9b-metamath-qlora.yaml" in names
    assert any("llama" in n for n in names)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_validates_and_starts_with_its_command(path: Path) -> None:
    r = rc.load(path)
    assert r.name == path.stem
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(("# workbench train ", "# workbench run ")) and f"recipes/{path.name}" in first, first
    assert r.data.sources, "a shipped recipe names its data"


def test_metamath_recipe_matches_the_published_setup() -> None:
    r = rc.load(REPO / "recipes" / "qwen3.5-9b-metamath-qlora.yaml")
    assert r.model.name == "Qwen/Qwen3.5-9B-Instruct" and r.model.max_length == 2048
    assert r.data.sources == ["meta-math/MetaMathQA"] and r.data.limit == 10000
    assert r.data.mapping == {"query": "query", "response": "response"}
    assert (r.lora.r, r.lora.alpha, r.lora.dropout) == (32, 32, 0.05)
    # every linear layer: on Qwen3.5 the seven attention/MLP names would leave its 24 Gated DeltaNet layers bare
    assert r.lora.target_modules == "all-linear"
    assert r.quant.load_in_4bit and r.quant.bnb_4bit_quant_type == "nf4" and r.quant.double_quant
    t = r.train
    assert (t.learning_rate, t.lr_scheduler, t.warmup_ratio, t.epochs) == (2e-4, "cosine", 0.05, 3)
    assert (t.per_device_batch_size, t.gradient_accumulation, t.optimizer, t.packing, t.seed) == (4, 4, "adamw_8bit", True, 42)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_names_the_dotted_key_and_a_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "train:\n  lr_warmup_steps: 3\n")
    with pytest.raises(WorkbenchError) as e:
        rc.load(p)
    msg = e.value.message
    assert str(p) in msg
    assert "train.lr_warmup_steps: unknown key; did you mean warmup_ratio?" in msg


def test_unknown_section_and_bad_value(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"trian: unknown key; did you mean train\?"):
        rc.load(write(tmp_path, "trian: {}\n"))
    with pytest.raises(WorkbenchError, match=r"lora\.r: Input should be greater than 0"):
        rc.load(write(tmp_path, "lora: {r: 0}\n"))
    with pytest.raises(WorkbenchError, match=r"data\.heldout: a held-out fraction must be in \(0, 1\)"):
        rc.from_dict({"data": {"heldout": 1.5}})


def test_overrides_use_dotted_keys_and_yaml_scalars(tmp_path: Path) -> None:
    p = write(tmp_path, "lora: {r: 8}\ntrain: {learning_rate: 2.0e-4}\n")
    r = rc.load(p, ["lora.r=16", "train.learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]", "train.packing=true", "data.heldout=0.1"])
    assert r.lora.r == 16
    assert r.train.learning_rate == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string; we do not
    assert r.lora.target_modules == ["q_proj", "v_proj"]
    assert r.train.packing is True and r.data.heldout == 0.1


def test_override_errors_name_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, "{}\n")
    with pytest.raises(WorkbenchError, match=r"lora\.rank: unknown key \(known: r, alpha, "):
        rc.load(p, ["lora.rank=4"])
    with pytest.raises(WorkbenchError, match=r"train\.learning_rat: unknown key; did you mean learning_rate\?"):
        rc.load(p, ["train.learning_rat=1e-4"])
    with pytest.raises(WorkbenchError, match="not KEY=VALUE"):
        rc.load(p, ["lora.r"])
    with pytest.raises(WorkbenchError, match="lora.r is not a section"):
        rc.load(p, ["lora.r=4", "lora.r.x=1"])


def test_early_stopping_needs_heldout_and_eval_every() -> None:
    with pytest.raises(WorkbenchError, match="needs held-out data"):
        rc.from_dict({"train": {"early_stopping_patience": 2, "eval_every": 5}})
    with pytest.raises(WorkbenchError, match="needs train.eval_every"):
        rc.from_dict({"data": {"heldout": 0.1}, "train": {"early_stopping_patience": 2}})


def test_every_field_has_help_and_round_trips_through_yaml(tmp_path: Path) -> None:
    rows = rc.describe()
    assert len(rows) > 60
    assert all(help_text for _, _, help_text in rows), [k for k, _, h in rows if not h]
    r = rc.from_dict({"lora": {"r": 4}, "train": {"max_steps": 3}})
    again = rc.load(write(tmp_path, r.to_yaml()))
    assert again.model_dump() == {**r.model_dump(), "name": "r"}
    assert again.lora.r == 4 and again.train.max_steps == 3


def test_missing_recipe_file_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no such recipe"):
        rc.load(tmp_path / "nope.yaml")


def test_model_template_kwargs_are_plain_named_values(tmp_path: Path) -> None:
    r = rc.load(write(tmp_path, "model:\n  template_kwargs: {enable_thinking: false, reasoning_effort: low}\n"))
    assert r.model.template_kwargs == {"enable_thinking": False, "reasoning_effort": "low"}
    assert rc.from_dict({}, overrides=["model.template_kwargs.date_string='26 Jul 2024'"]).model.template_kwargs == {"date_string": "26 Jul 2024"}
    # an unquoted YAML date is a date object, not what a template's string concatenation can use
    with pytest.raises(WorkbenchError, match=r"model\.template_kwargs: date_string: a date is not a plain value; quote it"):
        rc.load(write(tmp_path, "model:\n  template_kwargs: {date_string: 2024-07-26}\n"))
    with pytest.raises(WorkbenchError, match=r"model\.template_kwargs: 'not a name' is not a name a template can read"):
        rc.from_dict({"model": {"template_kwargs": {"not a name": 1}}})
