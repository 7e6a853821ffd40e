"""lm-eval for real on the tiny local model, base and base+adapter, offline; task, adapter and data errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.eval import results as evalresults
from workbench.eval import run as ev
from workbench.eval.paired import compare
from workbench.errors import WorkbenchError
from workbench.eval.tasks import SHIPPED, prepare_tasks

GSM8K = "data/gsm8k/test.jsonl"
HELDOUT = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."},
                  {"role": "user", "content": "Again."}, {"role": "assistant", "content": "Hi again."}]},
    {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Red."}]},
]  # fmt: skip
FAST = {"max_gen_toks": 4}


@pytest.fixture(scope="module")
def gsm8k(fixtures_dir: Path) -> Path:
    path = fixtures_dir / GSM8K
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("chatml")


def make_adapter(model: Path, dest: Path, *, base_name: str | None = None) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so base and base+adapter differ."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(model)
    get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)).save_pretrained(dest)
    if base_name is not None:
        cfg = json.loads((dest / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = base_name
        (dest / "adapter_config.json").write_text(json.dumps(cfg))
    return dest


@pytest.fixture(scope="module")
def adapter(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HELDOUT))
    return path


@pytest.fixture(scope="module")
def pair(model_dir: Path, adapter: Path, heldout_file: Path, gsm8k: Path) -> tuple[ev.EvalResults, ev.EvalResults]:
    settings = ev.Settings(tasks=["gsm8k_local", "heldout", "heldout_chrf"], limit=2, gen_kwargs=FAST, heldout=str(heldout_file), generations=2)
    base, adapted = ev.evaluate_pair(model_dir, adapter, settings, data={"gsm8k_local": gsm8k})
    return base, adapted


def test_base_and_adapter_run_with_identical_settings(pair) -> None:
    base, adapted = pair
    assert base.adapter is None and adapted.adapter is not None
    assert base.settings == adapted.settings
    s = base.settings
    assert s["apply_chat_template"] is True and s["seed"] == 1234 and s["limit"] == 2 and s["gen_kwargs"] == FAST
    assert set(base.tasks) == {"gsm8k_local", "heldout", "heldout_chrf"}
    assert set(base.tasks["heldout_chrf"].metrics) == {"chrf,none"}  # the same data under another metric
    gsm = base.tasks["gsm8k_local"]
    assert gsm.n == 2 and set(gsm.metrics) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert gsm.generation_kwargs["max_gen_toks"] == 4
    assert gsm.config_hash == adapted.tasks["gsm8k_local"].config_hash
    # the same prompts went to both models; the adapter changed what came back
    assert [x.prompt for x in base.samples["gsm8k_local"]] == [x.prompt for x in adapted.samples["gsm8k_local"]]
    assert base.samples["gsm8k_local"][0].prompt.startswith("<|im_start|>user\nQuestion: ")
    assert base.heldout.loss != adapted.heldout.loss
    assert base.versions["lm_eval"]


def test_heldout_task_prompts_are_the_conversations_own_turns(pair, model_dir: Path) -> None:
    from transformers import AutoTokenizer

    base, _ = pair
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = {x.doc_id: x for x in base.samples["heldout"]}
    assert rows[0].prompt == tok.apply_chat_template(HELDOUT[0]["messages"][:2], tokenize=False, add_generation_prompt=True)
    assert rows[1].prompt == tok.apply_chat_template(HELDOUT[1]["messages"][:3], tokenize=False, add_generation_prompt=True)
    assert (rows[0].target, rows[1].target) == ("4", "Hi again.")


def test_heldout_loss_and_generations(pair) -> None:
    base, adapted = pair
    h = base.heldout
    assert h.rows == 3 and h.skipped == 0 and h.tokens > 3 and h.loss > 0
    assert h.perplexity == pytest.approx(2.718281828 ** h.loss)
    assert "assistant" in h.loss_on
    assert [g.prompt for g in base.generations] == ["What is 2 + 2?", "Again."]
    assert [g.id for g in base.generations] == [g.id for g in adapted.generations]


def test_results_round_trip_and_compare(pair, tmp_path: Path) -> None:
    base, adapted = pair
    path = evalresults.save(tmp_path / "eval.json", base, adapted)
    b2, a2 = evalresults.load(path)
    assert (b2, a2) == (base, adapted)
    comp = compare(b2, a2)
    assert {(d.task, d.metric) for d in comp.deltas} >= {("gsm8k_local", "exact_match,strict-match"), ("heldout", "exact_match,none")}
    assert all(f.paired == 2 for f in comp.flips if f.task == "gsm8k_local")
    assert "heldout_chrf" not in {f.task for f in comp.flips}  # chrF is not pass/fail per item
    assert len(comp.generations) == 2


def test_results_of_another_model_are_refused(pair, tiny_model_dir) -> None:
    base, adapted = pair
    other = tiny_model_dir("chatml", seed=1)  # same shapes, other weights
    assert ev.fingerprint(other) != base.model["fingerprint"]
    adapted.model = {"path": str(other), "fingerprint": ev.fingerprint(other)}
    try:
        with pytest.raises(WorkbenchError, match="different models"):
            compare(base, adapted)
    finally:
        adapted.model = dict(base.model)


# --- errors (no model is run) -------------------------------------------------------------------


def test_adapter_of_another_base_is_refused(model_dir: Path, tmp_path: Path, heldout_file: Path) -> None:
    bad = make_adapter(model_dir, tmp_path / "adapter", base_name="/models/some-other-base")
    with pytest.raises(WorkbenchError, match="trained on /models/some-other-base") as e:
        ev.evaluate(model_dir, adapter=bad, tasks=["heldout"], heldout=heldout_file)
    assert "--skip-base-check" in (e.value.hint or "")
    ev.check_adapter_base(make_adapter(model_dir, tmp_path / "hub", base_name=f"org/{model_dir.name}"), str(model_dir))  # same name: fine


def test_not_an_adapter(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="not a PEFT adapter"):
        ev.evaluate(model_dir, adapter=tmp_path, tasks=["heldout"])
    with pytest.raises(WorkbenchError, match="no config.json"):
        ev.resolve_model(tmp_path)


def test_task_data_missing(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"task gsm8k_local: data file .* not found") as e, prepare_tasks(["gsm8k_local"], data={"gsm8k_local": tmp_path / "nope.jsonl"}):
        pass
    assert "--data gsm8k_local=FILE" in (e.value.hint or "")
    with pytest.raises(WorkbenchError, match="task heldout: data file"), prepare_tasks(["heldout"]):
        pass


def test_task_folder_and_data_names_checked(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="task folder .* not found"), prepare_tasks(["gsm8k_local"], include_path=tmp_path / "missing"):
        pass
    with pytest.raises(WorkbenchError, match="no local YAML: nosuch"), prepare_tasks([], data={"nosuch": tmp_path}):
        pass


def test_include_folder_and_relative_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "rows.jsonl").write_text('{"q": "a", "a": "b"}\n')
    (tasks / "mine.yaml").write_text("task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: rows.jsonl\n"
                                     "test_split: test\noutput_type: generate_until\ndoc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)  # rows.jsonl is not in the working directory: found beside the YAML
    with prepare_tasks(["mine"], include_path=tasks) as td:
        assert td.data_files["mine"] == [str((tasks / "rows.jsonl").resolve())]
        assert not td.needs_defaults
    assert (tasks / "mine.yaml").read_text().count("rows.jsonl") == 1  # the shipped YAML is untouched


@pytest.mark.slow
def test_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="unknown task.*no_such_task_xyz"), prepare_tasks(["no_such_task_xyz"]):
        pass


def test_offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with ev.offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in os.environ


# --- a run directory through the CLI ------------------------------------------------------------


def test_cli_eval_run_dir_then_report(model_dir: Path, adapter: Path, heldout_file: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "runs" / "demo"
    shutil.copytree(adapter, run / "adapter")
    shutil.copy(heldout_file, run / "heldout.jsonl")
    (run / "recipe.yaml").write_text(
        "# workbench train runs/demo/recipe.yaml\nname: demo\n"
        "eval:\n  tasks: [heldout]\n  limit: 2\n  gen_kwargs: {max_gen_toks: 4}\ntrain:\n  seed: 7\n"
    )
    (run / "run.json").write_text(json.dumps({"model_path": str(model_dir)}))
    env = {**os.environ, "COLUMNS": "300"}
    r = subprocess.run([sys.executable, "-m", "workbench", "eval", str(run), "--generations", "1"], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "heldout" in r.stdout and "held-out loss" in r.stdout
    base, adapted = evalresults.load(run / "eval.json")
    assert base.settings["seed"] == 7 and base.settings["tokenizer"] is None and adapted.adapter["path"] == str(run / "adapter")
    r = subprocess.run([sys.executable, "-m", "workbench", "report", str(run), "-o", str(tmp_path / "r" / "demo.md")],
                       capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "r" / "demo.md").read_text()
    assert "| heldout | exact_match,none | 2 |" in text and "## Held-out split" in text
    # an adapter of another base, through the CLI: one clean error line
    make_adapter(model_dir, tmp_path / "other", base_name="/models/other")
    r = subprocess.run([sys.executable, "-m", "workbench", "eval", "--model", str(model_dir), "--adapter", str(tmp_path / "other"),
                        "--tasks", "heldout"], capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert r.returncode == 1 and "trained on /models/other" in r.stderr and "Traceback" not in r.stderr


# --- where tasks come from ----------------------------------------------------------------------


def _task_config(td, name: str) -> dict:  # type: ignore[no-untyped-def]
    task = td.manager().load_task_or_group([name])[name]
    return task.config.to_dict() if hasattr(task.config, "to_dict") else dict(task.config)


def test_a_users_task_replaces_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    shipped = yaml.safe_load((SHIPPED / "general_knowledge.yaml").read_text())
    assert shipped["task"] == "general_knowledge"
    data = SHIPPED / "general" / "general_knowledge.jsonl"
    for where, size in (("include", 7), ("cwd", 3)):
        mine = {**shipped, "num_fewshot": size, "dataset_kwargs": {"data_files": {"test": str(data)}}}
        folder = tmp_path / where / ("tasks" if where == "include" else "recipes/tasks")
        folder.mkdir(parents=True)
        (folder / "edited.yaml").write_text(yaml.safe_dump(mine))
    monkeypatch.chdir(tmp_path / "cwd")  # recipes/tasks here is the project's own folder
    with prepare_tasks(["general_knowledge"]) as td:
        assert td.local["general_knowledge"].parent == td.dirs[0] and _task_config(td, "general_knowledge")["num_fewshot"] == 3
    with prepare_tasks(["general_knowledge"], include_path=tmp_path / "include" / "tasks") as td:  # --include beats both
        assert _task_config(td, "general_knowledge")["num_fewshot"] == 7


def test_gsm8k_local_reproduces_lm_evals_gsm8k() -> None:
    """The shipped GSM8K tasks are lm-eval's own gsm8k and gsm8k_cot_llama with local data: every scoring field equal."""
    import yaml
    import lm_eval

    ours = SHIPPED
    theirs = Path(lm_eval.__file__).parent / "tasks" / "gsm8k"
    for mine, lm in (("gsm8k_local.yaml", "gsm8k.yaml"), ("gsm8k_local_chat.yaml", "gsm8k-cot-llama.yaml")):
        a, b = yaml.safe_load((ours / mine).read_text()), yaml.safe_load((theirs / lm).read_text())
        differ = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert differ == {"task", "dataset_path", "dataset_name", "dataset_kwargs", "tag"}, (mine, differ)
    cfg = yaml.safe_load((ours / "gsm8k_local.yaml").read_text())
    assert cfg["num_fewshot"] == 5 and cfg["fewshot_split"] == "train"
    for split in ("train", "test"):
        assert (ours / cfg["dataset_kwargs"]["data_files"][split]).is_file()


def test_gsm8k_local_draws_five_shots_from_train(model_dir: Path) -> None:
    """5-shot without the chat template: five worked train examples, then the test question (lm-eval's prompt)."""
    base = ev.evaluate(model_dir, tasks=["gsm8k_local"], limit=1, apply_chat_template=False, gen_kwargs={"max_gen_toks": 2})
    prompt = base.samples["gsm8k_local"][0].prompt
    train = (SHIPPED / "gsm8k" / "train.jsonl").read_text()
    shots = prompt.split("Question: ")[1:]
    assert len(shots) == 6 and prompt.startswith("Question: ") and prompt.endswith("Answer:")
    assert all(json.dumps(s.split("\nAnswer:")[0])[1:-1] in train for s in shots[:5])
    assert shots[-1].startswith("Janet") and base.tasks["gsm8k_local"].num_fewshot == 5
