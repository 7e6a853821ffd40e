"""The run report: markdown with PNG figures beside it (decision, before/after, flips, data card, training, reproducibility).

``write_report(run_dir, out_path)`` reads these files from the run directory, each optional (a
missing one leaves its section saying so):

- ``eval.json``: the results file of ``workbench eval RUN_DIR`` (schema in workbench.eval.results).
- ``recipe.yaml``: the resolved recipe the run used (workbench.train.trainer writes it).
- ``run.json``: what training recorded: model_path, backend, precision, quantized, optimizer,
  data_hash, template_hash, examples {train, eval, rows_in, dropped{reason: n}}, versions,
  result {steps, first_loss, last_loss, eval_loss, trainable_params, total_params, tokens_per_s},
  and when present duration_s, hardware, tokenizer_hash.
- ``train_log.json``: one record per logged step (step, loss, eval_loss, learning_rate, tokens_per_s).
- ``ingest.json``: ``workbench ingest --json`` (read, written, rejected, rejected_by_reason, findings).
- ``dedup.json``: ``workbench dedup`` summary (counts {read, kept, removed, exact, near, contaminated, leaked, manual}, findings).
- ``check.json``: ``workbench check --json`` (rows, severity_counts, counts, findings).
- ``stats.json``: ``workbench stats --json`` (rows, columns.tokens / trained_tokens, trained_share).

The report is a pure function of those files: no clock, no absolute paths (models are named by
the recipe's model name and a fingerprint), figures saved without software or time metadata, so
the same inputs give the same bytes. It opens with the decision (workbench.eval.verdict): SHIP or
DON'T SHIP and the evidence, the paired test first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workbench.eval.paired import Comparison, compare
from workbench.errors import WorkbenchError
from workbench.eval.results import EvalResults
from workbench.eval.results import load as load_results
from workbench.eval.verdict import DEFAULT_GUARD_DROP, Decision, Evidence, decide
from workbench.report.figures import before_after_figure, loss_figure
from workbench.report.sections import cell, data_card, num, read_json, reproducibility, table, training

READS = ("eval.json", "recipe.yaml", "run.json", "train_log.json", "ingest.json", "dedup.json", "check.json", "stats.json", "adapter")
EXAMPLES = 3  # flip examples shown per direction
CLIP = 400  # characters of a prompt or answer shown


def write_report(
    run_dir: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None, *, results: str | os.PathLike[str] | None = None
) -> Path:
    """Write the markdown report for ``run_dir`` to ``out_path`` (default: the recipe's report.path, else
    RUN_DIR/report.md) and its figures beside it; ``results`` replaces RUN_DIR/eval.json. Returns the path."""
    from workbench.outputs import atomic_text, guard

    run = Path(run_dir)
    if not run.is_dir():
        raise WorkbenchError(f"{run}: no such run directory", "`workbench train RECIPE` makes one")
    if out_path is None:
        out_path = (_recipe(run / "recipe.yaml").get("report") or {}).get("path") or run / "report.md"
    out = Path(out_path)
    stem = out.name.rsplit(".", 1)[0]
    figures = [("figure", out.with_name(f"{stem}-{kind}.png")) for kind in ("before-after", "loss")]
    guard([("report", out), *figures], [*(run / name for name in READS), results])
    out.parent.mkdir(parents=True, exist_ok=True)
    text, _ = render(run, out, results=Path(results) if results else None)
    with atomic_text(out) as fh:
        fh.write(text)
    return out


def decision_of(run_dir: str | os.PathLike[str], *, results: str | os.PathLike[str] | None = None) -> Decision | None:
    """The run's SHIP / DON'T SHIP decision (None when it has no before/after results), as the report states it."""
    run = Path(run_dir)
    path = Path(results) if results else run / "eval.json"
    if not path.is_file():
        return None
    base, adapted = load_results(path)
    if adapted is None:
        return None
    return _decide(compare(base, adapted), _recipe(run / "recipe.yaml"))


def _decide(comp: Comparison, recipe: dict[str, Any]) -> Decision:
    s = comp.settings
    ev = recipe.get("eval") or {}
    guards = s.get("guard_tasks") if s.get("guard_tasks") is not None else ev.get("guard_tasks") or []
    drop = s.get("guard_drop") if s.get("guard_drop") is not None else ev.get("guard_drop", DEFAULT_GUARD_DROP)
    return decide(comp, guard_tasks=guards, guard_drop=float(drop))


def render(run: Path, out: Path, *, results: Path | None = None) -> tuple[str, Decision | None]:
    """The report's markdown and its decision; figures are written beside ``out`` as a side effect."""
    info = _json(run / "run.json") or {}
    recipe = _recipe(run / "recipe.yaml")
    results_path = results or run / "eval.json"
    base = adapted = None
    if results_path.is_file():
        base, adapted = load_results(results_path)
        _check_results(run, info, base, adapted, results_path)
    comp = compare(base, adapted) if base and adapted else None
    decision = _decide(comp, recipe) if comp else None
    name = recipe.get("name") or info.get("recipe") or run.name
    stem = out.name.rsplit(".", 1)[0]
    parts = [f"# Run report: {name}", ""]
    note = (recipe.get("report") or {}).get("note")
    if note:
        parts += [f"> {' '.join(str(note).split())}", ""]
    parts += _verdict(comp, base, decision)
    parts += _before_after(comp, recipe, out.parent, f"{stem}-before-after.png")
    parts += _flips(comp)
    parts += _heldout(comp)
    parts += data_card(run, info, recipe)
    log = _json(run / "train_log.json")
    figure = f"{stem}-loss.png"
    drawn = isinstance(log, list) and loss_figure(log, out.parent / figure, title=f"{name}: training and eval loss")
    parts += training(run, info, recipe, figure if drawn else None)
    parts += reproducibility(run, info, recipe, base, adapted)
    return "\n".join(parts).rstrip() + "\n", decision


# --- inputs -----------------------------------------------------------------------------------


_json = read_json


def _recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise WorkbenchError(f"{path}: not valid YAML: {e}") from None
    return raw if isinstance(raw, dict) else {}


def _check_results(run: Path, info: dict[str, Any], base: EvalResults, adapted: EvalResults | None, path: Path) -> None:
    """The results must be of this run's base model and (when present here) this run's adapter."""
    from workbench.eval.run import fingerprint

    model = info.get("model_path")
    if model:
        same = base.model.get("path") == model
        if Path(model).is_dir():
            same = base.model.get("fingerprint") == fingerprint(model)
        if not same:
            raise WorkbenchError(f"{path} evaluates {base.model.get('path')}, but this run trained on {model}",
                                 f"run `workbench eval {run}` to evaluate this run")  # fmt: skip
    adapter_dir = run / "adapter"
    here = (adapter_dir / "adapter_config.json").is_file()
    if adapted and adapted.adapter and here and adapted.adapter.get("fingerprint") != fingerprint(adapter_dir):
        raise WorkbenchError(f"{path} evaluates the adapter {adapted.adapter.get('path')}, not this run's adapter",
                                 f"run `workbench eval {run}` again")  # fmt: skip


# --- formatting -------------------------------------------------------------------------------

_num, _cell, _table = num, cell, table


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _block(label: str, text: str) -> list[str]:
    text = text if len(text) <= CLIP else text[:CLIP] + " …"
    fence = "```"
    while fence in text:
        fence += "`"
    return [f"{label}:", "", f"{fence}text", text, fence, ""]


def _model_name(comp: Comparison, recipe: dict[str, Any]) -> str:
    """The base model by the recipe's name for it and its fingerprint: never a path on the machine that ran it."""
    spec = (recipe.get("model") or {}).get("name") or Path(str(comp.model.get("path") or "model")).name
    return f"`{spec}` (fingerprint `{comp.model.get('fingerprint')}`)"


# --- sections ---------------------------------------------------------------------------------


def _verdict(comp: Comparison | None, base: EvalResults | None, decision: Decision | None) -> list[str]:
    out = ["## Decision", ""]
    if comp is None or decision is None:
        why = "`eval.json` holds only the base model" if base else "no `eval.json` in the run directory"
        return out + [f"**Verdict:** not evaluated ({why}; run `workbench eval RUN_DIR`).", ""]
    if not comp.deltas and not comp.heldout:
        return out + ["**Verdict:** no task was evaluated.", ""]
    rows = [[e.task, e.metric, e.role, e.n, _num(e.before), _num(e.after), _signed(e.delta),
             f"{_signed(e.ci[0])} to {_signed(e.ci[1])}" if e.ci else "–", f"{e.test}: {_p(e.p)}" if e.p is not None else e.test,
             f"{e.flips[0]} / {e.flips[1]}" if e.flips else "–", "left out" if e.ignored else _standing(e)]
            for e in decision.evidence]  # fmt: skip
    out += _table(["task", "metric", "role", "n", "base", "base+adapter", "Δ", "95% CI of Δ", "test: p", "fail→pass / pass→fail", "reading"], rows)
    out += [f"- {n}." for n in decision.notes]
    if comp.heldout:
        h = comp.heldout
        out += [f"- held-out loss {_num(h['before'])} → {_num(h['after'])} ({_signed(h['after'] - h['before'])}) on {h['rows']} conversations."]
    out += [
        f"- Pass/fail metrics are paired per item: McNemar's exact test on the items that flipped, and an Agresti-Min 95% "
        f"interval for the change; other metrics: a two-sample z-test on lm-eval's standard errors. α = 0.05. A forgetting "
        f"guard (role guard) fails when it falls by more than {decision.guard_drop:.2f} beyond noise.",
        "",
        decision.line,
        "",
    ]  # fmt: skip
    return out


def _standing(e: Evidence) -> str:
    if e.improved:
        return "better, beyond noise"
    if e.regressed:
        return "worse, beyond noise"
    return "no change beyond noise"


def _before_after(comp: Comparison | None, recipe: dict[str, Any], where: Path, name: str) -> list[str]:
    out = ["## Before / after", ""]
    if comp is None or not comp.deltas:
        return out + ["No before/after results.", ""]
    s = comp.settings
    quant = "a 4-bit NF4 base for both runs (as QLoRA trained it)" if s.get("load_in_4bit") else f"the base in {s.get('dtype') or 'auto'} precision for both runs"
    run_name = recipe.get("name") or "this run"
    out += [
        (f"Base model {_model_name(comp, recipe)}; adapter of run `{run_name}` (fingerprint `{(comp.adapter or {}).get('fingerprint')}`). "
        f"Same settings for both: {quant}, limit {s.get('limit') if s.get('limit') is not None else 'none (every item)'}, few-shot {s.get('num_fewshot') if s.get('num_fewshot') is not None else 'task default'}, "
        f"chat template {'on' if s.get('apply_chat_template') else 'off'}, system instruction {repr(s['system_instruction']) if s.get('system_instruction') else 'none'}, "
        f"BOS {'added' if s.get('add_bos_token') else 'not added'}, generation {json.dumps(s.get('gen_kwargs') or {}, sort_keys=True)}, "
        f"template kwargs {json.dumps(s.get('template_kwargs') or {}, sort_keys=True)}, seed {s.get('seed')}, batch size {s.get('batch_size')}, "
        f"lm-eval backend {s.get('backend') or 'hf'}."),
        "",
    ]  # fmt: skip
    rows = [[d.task, d.metric, d.n, _num(d.before), _num(d.after), _signed(d.delta), f"{_num(d.before_stderr)} / {_num(d.after_stderr)}"] for d in comp.deltas]
    out += _table(["task", "metric", "n", "base", "base+adapter", "Δ", "stderr (base / adapter)"], rows)
    before_after_figure(comp.deltas, where / name, title=f"{run_name}: base vs base+adapter")
    return out + [f"![before and after]({name})", ""]


def _flips(comp: Comparison | None) -> list[str]:
    out = ["## Per-item flips", ""]
    if comp is None or not comp.flips:
        return out + ["No per-item results to pair (pass/fail metrics only).", ""]
    rows = [[f.task, f.metric, f.paired, len(f.fail_to_pass), len(f.pass_to_fail), f.both_pass, f.both_fail, _p(f.p)] for f in comp.flips]
    out += _table(["task", "metric", "items", "fail → pass", "pass → fail", "both pass", "both fail", "McNemar p"], rows)
    for f in comp.flips:
        for title, items in (("fail → pass", f.fail_to_pass), ("pass → fail", f.pass_to_fail)):
            if not items:
                continue
            out += [f"### {f.task} {f.metric}: {title} ({len(items)})", ""]
            for item in items[:EXAMPLES]:
                out += [f"**item {item.doc_id}**", ""] + _block("prompt", item.prompt)
                for who, raw, answer in (("base", item.before_raw, item.before), ("base+adapter", item.after_raw, item.after)):
                    out += _block(f"{who} wrote", raw) + [f"{who}'s answer as the filter read it: `{_cell(answer)}`", ""] if raw else _block(who, answer)
                out += _block("target", item.target)
    return out


def _heldout(comp: Comparison | None) -> list[str]:
    out = ["## Held-out split", ""]
    if comp is None or (not comp.heldout and not comp.generations):
        return out + ["No held-out evaluation.", ""]
    if comp.heldout:
        h = comp.heldout
        out += [f"{h['rows']} conversations, {h['tokens']} scored tokens; loss on {h['loss_on']}.", ""]
        out += _table(["", "base", "base+adapter", "Δ"], [
            ["loss", _num(h["before"], 4), _num(h["after"], 4), _signed(h["after"] - h["before"], 4)],
            ["perplexity", _num(h["perplexity_before"], 2), _num(h["perplexity_after"], 2), _signed(h["perplexity_after"] - h["perplexity_before"], 2)],
        ])  # fmt: skip
    if comp.generations:
        out += ["### Sample generations", ""]
        for i, g in enumerate(comp.generations, 1):
            out += [f"**{i}.**", ""] + _block("prompt", g["prompt"]) + _block("base", g["before"]) + _block("base+adapter", g["after"]) + _block("target", g["target"])
    return out


