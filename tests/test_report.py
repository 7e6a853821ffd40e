"""The comparison maths (z-test, flips, McNemar) on constructed results, and the golden report."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.eval import results as evalresults
from workbench.eval.paired import compare, item_flips, mcnemar, z_test
from workbench.errors import WorkbenchError
from workbench.eval.results import (
    EvalResults,
    Generation,
    Heldout,
    Metric,
    Sample,
    TaskResult,
)
from workbench.report.markdown import write_report

GOLDEN = Path(__file__).parent / "data" / "report"
UPDATE = os.environ.get("WORKBENCH_UPDATE_GOLDEN") == "1"

SETTINGS = {
    "tasks": ["gsm8k_local", "heldout"], "limit": 20, "num_fewshot": None, "apply_chat_template": True,
    "system_instruction": None, "fewshot_as_multiturn": True, "gen_kwargs": {"max_gen_toks": 64}, "seed": 42,
    "batch_size": 1, "add_bos_token": False, "tokenizer": "runs/golden/adapter", "dtype": "auto", "device": "cpu",
    "bootstrap_iters": 1000, "heldout": "runs/golden/heldout.jsonl", "generations": 2,
}  # fmt: skip


def stderr(values: list[float]) -> float:
    """lm-eval's mean_stderr: sample standard deviation over sqrt(n)."""
    n = len(values)
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1) / n)


def run_result(passes: dict[str, set[int]], n: dict[str, int], *, adapter: bool, loss: float) -> EvalResults:
    """A constructed run: per (task, metric key) the set of items that pass."""
    tasks: dict[str, TaskResult] = {}
    samples: dict[str, list[Sample]] = {}
    for key, ok in sorted(passes.items()):
        task, metric_key = key.split(":")
        metric, filt = metric_key.split(",")
        values = [1.0 if i in ok else 0.0 for i in range(n[task])]
        t = tasks.setdefault(task, TaskResult(n=n[task], metrics={}, higher_is_better={metric: True}, version="1.0",
                                              num_fewshot=0, config_hash=f"cfg-{task}", generation_kwargs={"max_gen_toks": 64}))  # fmt: skip
        t.metrics[metric_key] = Metric(sum(values) / len(values), stderr(values))
        for i, v in enumerate(values):
            answer = f"#### {i}" if v else f"#### {i + 100}"
            raw = f"{'adapter' if adapter else 'base'} says {answer}"  # what the model wrote; the filter keeps the number
            samples.setdefault(task, []).append(Sample(
                doc_id=i, filter=filt, prompt=f"Question {i}: what is {i} + 0?", target=f"{i} + 0 = {i}\n#### {i}",
                response=(answer.split()[-1] if filt != "none" else answer), metrics={metric: v}, raw=raw if filt != "none" else "",
            ))  # fmt: skip
    for rows in samples.values():
        rows.sort(key=lambda s: (s.filter, s.doc_id))
    return EvalResults(
        model={"path": "/models/tiny-chatml", "fingerprint": "f00d"},
        adapter={"path": "runs/golden/adapter", "base": "/models/tiny-chatml", "fingerprint": "ada9"} if adapter else None,
        settings=dict(SETTINGS),
        tasks=tasks,
        samples=samples,
        heldout=Heldout(path="runs/golden/heldout.jsonl", rows=20, skipped=0, tokens=812, loss=loss, perplexity=math.exp(loss),
                        loss_on="assistant tokens (workbench.template.mask, end-of-turn included)"),
        generations=[
            Generation(id="g1", prompt="Name a primary colour.", target="Red.", output="Red." if adapter else "red red red"),
            Generation(id="g2", prompt="What is 3 + 4?", target="7", output="7" if adapter else "```\n34\n```"),
        ],
        versions={"lm_eval": "0.4.13", "peft": "0.21.2", "torch": "2.13.0+cpu", "transformers": "5.24.0", "workbench": "0.1.0"},
    )


def golden_pair() -> tuple[EvalResults, EvalResults]:
    n = {"gsm8k_local": 20, "heldout": 10}
    base = run_result({"gsm8k_local:exact_match,strict-match": {0, 1, 2, 3}, "gsm8k_local:exact_match,flexible-extract": {0, 1, 2, 3, 4, 5},
                       "heldout:exact_match,none": {7}}, n, adapter=False, loss=2.3141)  # fmt: skip
    adapted = run_result({"gsm8k_local:exact_match,strict-match": {0, 1, *range(4, 11)}, "gsm8k_local:exact_match,flexible-extract": set(range(10)),
                          "heldout:exact_match,none": set()}, n, adapter=True, loss=1.8755)  # fmt: skip
    return base, adapted


# --- maths --------------------------------------------------------------------------------------


def test_z_test_matches_the_normal_distribution() -> None:
    z, p = z_test(0.2, 0.45, 0.09, 0.11)
    assert z == pytest.approx(0.25 / math.sqrt(0.09**2 + 0.11**2))
    assert p == pytest.approx(0.0794, abs=1e-3)  # 2 * (1 - Phi(1.7545))
    scipy = pytest.importorskip("scipy.stats")
    assert p == pytest.approx(2 * scipy.norm.sf(abs(z)))
    assert z_test(0.0, 0.0, 0.0, 0.0) == (None, None)  # no error to test against
    assert z_test(0.5, 0.4, None, 0.1) == (None, None)


def test_mcnemar_exact() -> None:
    assert mcnemar(0, 0) is None
    assert mcnemar(7, 2) == pytest.approx(2 * sum(math.comb(9, i) for i in range(3)) / 2**9)
    assert mcnemar(5, 5) == 1.0
    assert mcnemar(10, 0) == pytest.approx(2 / 2**10)


def test_compare_deltas_and_flips() -> None:
    base, adapted = golden_pair()
    comp = compare(base, adapted)
    by = {(d.task, d.metric): d for d in comp.deltas}
    strict = by["gsm8k_local", "exact_match,strict-match"]
    assert (strict.before, strict.after, strict.n) == (pytest.approx(0.2), pytest.approx(0.45), 20)
    assert strict.delta == pytest.approx(0.25) and strict.better and not strict.worse
    z, p = z_test(0.2, 0.45, strict.before_stderr, strict.after_stderr)
    assert strict.z == pytest.approx(z) and strict.p == pytest.approx(p)
    held = by["heldout", "exact_match,none"]
    assert held.worse and not held.significant
    flips = {(f.task, f.metric): f for f in comp.flips}
    f = flips["gsm8k_local", "exact_match,strict-match"]
    assert [x.doc_id for x in f.fail_to_pass] == [4, 5, 6, 7, 8, 9, 10]
    assert [x.doc_id for x in f.pass_to_fail] == [2, 3]
    assert (f.paired, f.both_pass, f.both_fail) == (20, 2, 9)
    assert f.paired == f.both_pass + f.both_fail + len(f.fail_to_pass) + len(f.pass_to_fail)
    assert f.fail_to_pass[0].before_raw.startswith("base") and f.fail_to_pass[0].after_raw.startswith("adapter")
    assert (f.fail_to_pass[0].before, f.fail_to_pass[0].after) == ("104", "4")  # the filtered answers beside the raw text
    assert comp.heldout and comp.heldout["after"] < comp.heldout["before"]
    assert [g["after"] for g in comp.generations] == ["Red.", "7"]


def test_flips_skip_non_binary_metrics() -> None:
    rows = [Sample(0, "none", "p", "t", "r", {"chrf": 0.37})]
    assert item_flips("t", "chrf,none", rows, rows) is None


def test_compare_refuses_another_model() -> None:
    base, adapted = golden_pair()
    adapted.model = {"path": "/models/other", "fingerprint": "beef"}
    with pytest.raises(WorkbenchError, match="different models"):
        compare(base, adapted)


def test_compare_refuses_different_settings() -> None:
    base, adapted = golden_pair()
    adapted.settings = {**adapted.settings, "num_fewshot": 5, "device": "cuda"}
    with pytest.raises(WorkbenchError, match="num_fewshot") as e:
        compare(base, adapted)
    assert "device" not in str(e.value)  # where it ran is not a setting that changes scores


def test_results_file_round_trip(tmp_path: Path) -> None:
    base, adapted = golden_pair()
    path = evalresults.save(tmp_path / "eval.json", base, adapted)
    b2, a2 = evalresults.load(path)
    assert b2 == base and a2 == adapted
    assert evalresults.save(tmp_path / "again.json", b2, a2).read_bytes() == path.read_bytes()


def test_results_file_errors(tmp_path: Path) -> None:
    (tmp_path / "lm.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(WorkbenchError, match="not a workbench results file"):
        evalresults.load(tmp_path / "lm.json")
    with pytest.raises(WorkbenchError, match="no such results file"):
        evalresults.load(tmp_path / "missing.json")


# --- the report ---------------------------------------------------------------------------------


@pytest.fixture()
def golden_run(tmp_path: Path) -> Path:
    run = tmp_path / "golden"
    shutil.copytree(GOLDEN / "run", run)
    return run


def test_fixture_results_are_the_constructed_ones() -> None:
    base, adapted = golden_pair()
    if UPDATE:
        evalresults.save(GOLDEN / "run" / "eval.json", base, adapted)
    assert evalresults.load(GOLDEN / "run" / "eval.json") == (base, adapted)


def test_golden_report(golden_run: Path, tmp_path: Path) -> None:
    out = write_report(golden_run, tmp_path / "reports" / "golden.md")
    text = out.read_text(encoding="utf-8")
    if UPDATE:
        (GOLDEN / "report.md").write_text(text, encoding="utf-8")
    assert text == (GOLDEN / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "reports" / "golden-before-after.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "reports" / "golden-loss.png").is_file()
    assert str(tmp_path) not in text  # no absolute path of where it ran


def test_report_is_deterministic(golden_run: Path, tmp_path: Path) -> None:
    a = write_report(golden_run, tmp_path / "a" / "r.md")
    b = write_report(golden_run, tmp_path / "b" / "r.md")
    assert a.read_bytes() == b.read_bytes()
    for fig in ("r-before-after.png", "r-loss.png"):
        png = (tmp_path / "a" / fig).read_bytes()
        assert png == (tmp_path / "b" / fig).read_bytes()
        assert b"Software" not in png and b"Creation Time" not in png


def test_report_sections(golden_run: Path, tmp_path: Path) -> None:
    text = write_report(golden_run, tmp_path / "r.md").read_text()
    decision = next(line for line in text.splitlines() if line.startswith(("**SHIP**", "**DON'T SHIP**")))
    # 7 fail->pass against 2 pass->fail on 20 items is within noise (McNemar p = 0.18): no ship
    assert decision.startswith("**DON'T SHIP**: no target metric rose beyond noise")
    assert "| gsm8k_local | exact_match,strict-match | target | 20 | 0.200 | 0.450 | +0.250 |" in text
    assert "McNemar: 0.180 | 7 / 2 | no change beyond noise |" in text
    assert "/models/tiny-chatml" not in text and "Base model `tiny:chatml` (fingerprint `f00d`)" in text
    assert "| gsm8k_local | exact_match,strict-match | 20 | 0.200 | 0.450 | +0.250 |" in text
    assert "| gsm8k_local | exact_match,strict-match | 20 | 7 | 2 | 2 | 9 |" in text
    assert "| removed: contaminated | 1 |" in text
    assert "trained-token share | 42.9%" in text
    assert "36,864 of 188,736 (19.53%)" in text
    assert "| rows accounted for | 212 of 212: every row accounted for |" in text
    assert "base wrote:" in text and "base's answer as the filter read it: `104`" in text
    for heading in ("## Decision", "## Before / after", "## Per-item flips", "## Held-out split", "## Data card", "## Training", "## Reproducibility"):
        assert heading in text


def test_report_without_eval_or_summaries(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(GOLDEN / "run" / "recipe.yaml", run / "recipe.yaml")
    text = write_report(run, tmp_path / "r.md").read_text()
    assert "not evaluated (no `eval.json`" in text and "SHIP" not in text
    assert "No data summaries" in text
    assert not (tmp_path / "r-before-after.png").exists()


def test_report_default_path(golden_run: Path) -> None:
    assert write_report(golden_run) == golden_run / "report.md"


def test_report_refuses_results_of_another_model(golden_run: Path) -> None:
    doc = json.loads((golden_run / "eval.json").read_text())
    doc["base"]["model"]["path"] = doc["adapter"]["model"]["path"] = "/models/something-else"
    (golden_run / "eval.json").write_text(json.dumps(doc))
    with pytest.raises(WorkbenchError, match="this run trained on /models/tiny-chatml"):
        write_report(golden_run, golden_run / "r.md")


def test_report_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no such run directory"):
        write_report(tmp_path / "nope", tmp_path / "r.md")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "300"}  # one error line, unwrapped
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env, check=False)


def test_cli_report(golden_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "golden.md"
    r = cli("report", str(golden_run), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (GOLDEN / "report.md").read_text()
    r = cli("report", str(tmp_path / "nope"))
    assert r.returncode == 1 and "no such run directory" in r.stderr and "Traceback" not in r.stderr


def test_task_config_hash_ignores_where_data_lies_and_function_addresses(tmp_path: Path) -> None:
    from workbench.eval.results import config_hash

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"q": 1}\n')
    b.write_text('{"q": 1}\n')

    def make() -> object:
        def process_docs(ds: object) -> object:
            return ds

        return process_docs

    def cfg(path: Path) -> dict[str, object]:
        return {"task": "t", "process_docs": make(), "dataset_kwargs": {"data_files": {"test": str(path)}}}

    assert config_hash(cfg(a)) == config_hash(cfg(b))  # other file, other function object, same content
    b.write_text('{"q": 2}\n')
    assert config_hash(cfg(a)) != config_hash(cfg(b))


# --- the decision -------------------------------------------------------------------------------


def test_paired_interval_and_mcnemar_match_the_references() -> None:
    from workbench.eval.paired import paired_ci

    lo, hi = paired_ci(7, 2, 20)
    d, se = (7.5 - 2.5) / 22, math.sqrt((7.5 + 2.5) - (7.5 - 2.5) ** 2 / 22) / 22  # Agresti-Min: +1/2 in each cell
    assert (lo, hi) == (pytest.approx(d - 1.959964 * se), pytest.approx(d + 1.959964 * se))
    lo0, hi0 = paired_ci(0, 0, 50)
    assert lo0 == pytest.approx(-hi0) and hi0 > 0  # nothing flipped: an interval around 0, not a point
    assert paired_ci(200, 0, 200)[1] == 1.0
    scipy = pytest.importorskip("scipy.stats")
    for b, c in ((7, 2), (183, 0), (3, 9), (40, 41)):
        assert mcnemar(b, c) == pytest.approx(scipy.binomtest(min(b, c), b + c, 0.5).pvalue)


def _comp(base_pass: dict[str, set[int]], after_pass: dict[str, set[int]], n: dict[str, int], loss: tuple[float, float] = (2.0, 1.0)):  # type: ignore[no-untyped-def]
    base = run_result(base_pass, n, adapter=False, loss=loss[0])
    adapted = run_result(after_pass, n, adapter=True, loss=loss[1])
    base.generations = adapted.generations = []
    return compare(base, adapted)


def test_a_metric_that_cannot_move_is_left_out_with_its_reason() -> None:
    from workbench.eval.verdict import decide

    n = {"gsm": 40}
    comp = _comp({"gsm:exact_match,strict-match": set(), "gsm:exact_match,flexible-extract": set(range(5))},
                 {"gsm:exact_match,strict-match": set(), "gsm:exact_match,flexible-extract": set(range(30))}, n)  # fmt: skip
    d = decide(comp)
    assert d.ship and any("strict-match is left out: no item passes in either run" in x for x in d.notes)
    assert [e.metric for e in d.evidence if e.improved] == ["exact_match,flexible-extract"]
    only_frozen = _comp({"gsm:exact_match,strict-match": set()}, {"gsm:exact_match,strict-match": set()}, n)
    assert not decide(only_frozen).ship and "no target metric can show a change" in decide(only_frozen).line


def test_forgetting_guard_that_falls_beyond_its_threshold_blocks_shipping() -> None:
    from workbench.eval.verdict import decide

    n = {"gsm": 40, "general_knowledge": 80}
    before = {"gsm:exact_match,none": set(range(5)), "general_knowledge:acc,none": set(range(70))}
    kept = {"gsm:exact_match,none": set(range(35)), "general_knowledge:acc,none": set(range(68))}  # -0.025: within 0.05
    lost = {"gsm:exact_match,none": set(range(35)), "general_knowledge:acc,none": set(range(40))}  # -0.375, beyond noise
    ok = decide(_comp(before, kept, n), guard_tasks=["general_knowledge"])
    assert ok.ship and "forgetting guard general_knowledge acc,none 0.875 → 0.850" in ok.line
    assert "within the allowed drop of 0.05" in ok.line
    # A fall larger than the allowed drop that is not beyond noise ships, and the line says which it was.
    noisy = {"gsm:exact_match,none": set(range(35)), "general_knowledge:acc,none": set(range(65))}  # -0.0625, p > 0.05
    loose = decide(_comp(before, noisy, n), guard_tasks=["general_knowledge"])
    assert loose.ship and "0.875 → 0.812" in loose.line and "fell by more than 0.05 but not beyond noise" in loose.line
    assert "within the allowed drop" not in loose.line
    bad = decide(_comp(before, lost, n), guard_tasks=["general_knowledge"], guard_drop=0.05)
    assert not bad.ship and bad.line.startswith("**DON'T SHIP**: forgetting guard general_knowledge acc,none 0.875 → 0.500")
    assert not decide(_comp(before, kept, n, loss=(1.0, 1.2)), guard_tasks=["general_knowledge"]).ship  # held-out loss rose


def test_target_that_falls_beyond_noise_blocks_shipping() -> None:
    from workbench.eval.verdict import decide

    n = {"a": 40, "b": 40}
    d = decide(_comp({"a:exact_match,none": set(), "b:exact_match,none": set(range(30))},
                     {"a:exact_match,none": set(range(30)), "b:exact_match,none": set()}, n))  # fmt: skip
    assert not d.ship and "b exact_match,none 0.750 → 0.000" in d.line and "fell beyond noise" in d.line


def test_cli_fail_on_regress_exits_3_on_dont_ship(golden_run: Path, tmp_path: Path) -> None:
    r = cli("report", str(golden_run), "-o", str(tmp_path / "r.md"))
    assert r.returncode == 0 and "DON'T SHIP: no target metric rose beyond noise" in r.stderr
    r = cli("report", str(golden_run), "-o", str(tmp_path / "r.md"), "--fail-on-regress")
    assert r.returncode == 3 and "Traceback" not in r.stderr


def test_data_card_accounts_for_rows_over_the_limit_held_out_and_too_long(golden_run: Path, tmp_path: Path) -> None:
    dedup = json.loads((golden_run / "dedup.json").read_text())
    dedup["heldout_split"] = {"fraction": 0.1, "rows": 10, "limit": 100, "over_limit": 103}
    (golden_run / "dedup.json").write_text(json.dumps(dedup))
    stats = json.loads((golden_run / "stats.json").read_text())
    (golden_run / "stats.json").write_text(json.dumps({**stats, "too_long_removed": 3}))
    info = json.loads((golden_run / "run.json").read_text())
    info["examples"] = {"train": 87, "eval": 10, "rows_in": 87, "dropped": {}}
    (golden_run / "run.json").write_text(json.dumps(info))
    text = write_report(golden_run, tmp_path / "r.md").read_text()
    for row in ("| over data.limit=100 | 103 |", "| held out (0.1 of the rows used) | 10 |", "| removed: too_long (over model.max_length) | 3 |",
                "| trained on | 87 |", "| rows accounted for | 212 of 212: every row accounted for |"):  # 2 + 7 + 103 + 10 + 3 + 87
        assert row in text, row
    info["examples"]["train"] = 80  # seven rows vanish: the card says so
    (golden_run / "run.json").write_text(json.dumps(info))
    assert "| rows accounted for | 205 of 212: +7 rows unaccounted for |" in write_report(golden_run, tmp_path / "r.md").read_text()


def test_training_section_reads_the_applied_adapter_and_summed_sessions(golden_run: Path, tmp_path: Path) -> None:
    (golden_run / "eval.json").unlink()  # this adapter folder is not the one the results evaluated
    (golden_run / "adapter").mkdir()
    (golden_run / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "use_dora": False, "use_rslora": True, "target_modules": ["v_proj", "q_proj"]}))
    info = json.loads((golden_run / "run.json").read_text())
    info.update(segments=3, duration_s=500.0, tokens=123456, eval_loss_from="best checkpoint (restored)")
    info["targets"] = {}
    (golden_run / "run.json").write_text(json.dumps(info))
    text = write_report(golden_run, tmp_path / "r.md").read_text()
    assert "| method | LoRA; r 8, alpha 16, dropout 0.05, rsLoRA |" in text and "DoRA" not in text
    assert "| targets | q_proj, v_proj |" in text
    assert "| duration | 500 s over 3 sessions (resumed 2×; summed) |" in text and "| tokens trained on | 123,456 (summed over sessions) |" in text
    assert "| eval loss (restored best checkpoint) | 2.0130 |" in text
