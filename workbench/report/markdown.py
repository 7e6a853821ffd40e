"""The run report: markdown with PNG figures beside it (verdict, before/after, flips, data card, training, reproducibility).

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

The report is a pure function of those files: no clock, no absolute paths of the run directory,
figures saved without software or time metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from workbench.eval.paired import Comparison, Delta, compare
from workbench.errors import WorkbenchError
from workbench.eval.results import EvalResults
from workbench.eval.results import load as load_results
from workbench.report.figures import before_after_figure, loss_figure

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
    text = render(run, out, results=Path(results) if results else None)
    with atomic_text(out) as fh:
        fh.write(text)
    return out


def render(run: Path, out: Path, *, results: Path | None = None) -> str:
    """The report's markdown; figures are written beside ``out`` as a side effect."""
    info = _json(run / "run.json") or {}
    recipe = _recipe(run / "recipe.yaml")
    results_path = results or run / "eval.json"
    base = adapted = None
    if results_path.is_file():
        base, adapted = load_results(results_path)
        _check_results(run, info, base, adapted, results_path)
    comp = compare(base, adapted) if base and adapted else None
    name = recipe.get("name") or info.get("recipe") or run.name
    stem = out.name.rsplit(".", 1)[0]
    parts = [f"# Run report: {name}", ""]
    parts += _verdict(comp, base)
    parts += _before_after(comp, out.parent, f"{stem}-before-after.png")
    parts += _flips(comp)
    parts += _heldout(comp)
    parts += _data_card(run, info)
    parts += _training(run, info, recipe, out.parent, f"{stem}-loss.png")
    parts += _reproducibility(run, info, recipe, base, adapted)
    return "\n".join(parts).rstrip() + "\n"


# --- inputs -----------------------------------------------------------------------------------


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WorkbenchError(f"{path}: not valid JSON: {e}") from None


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


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _block(label: str, text: str) -> list[str]:
    text = text if len(text) <= CLIP else text[:CLIP] + " …"
    fence = "```"
    while fence in text:
        fence += "`"
    return [f"{label}:", "", f"{fence}text", text, fence, ""]


def _describe(d: Delta) -> str:
    p = _p(d.p)
    test = f"z = {d.z:.2f}, p {p if p.startswith('<') else '= ' + p}" if d.z is not None else "no standard error to test against"
    return f"{d.task} {d.metric} {_num(d.before)} → {_num(d.after)} ({_signed(d.delta)}, {test})"


# --- sections ---------------------------------------------------------------------------------


def _verdict(comp: Comparison | None, base: EvalResults | None) -> list[str]:
    if comp is None:
        why = "`eval.json` holds only the base model" if base else "no `eval.json` in the run directory"
        return [f"**Verdict:** not evaluated ({why}; run `workbench eval RUN_DIR`).", ""]
    if not comp.deltas and not comp.heldout:
        return ["**Verdict:** no task was evaluated.", ""]
    clauses = []
    for word, group in (("improved", comp.improved), ("regressed", comp.regressed)):
        sig = [d for d in group if d.significant]
        if group:
            clauses.append(f"{len(group)} {word} ({len(sig)} beyond their standard error)")
    unchanged = [d for d in comp.deltas if not d.better and not d.worse]
    if unchanged:
        clauses.append(f"{len(unchanged)} unchanged")
    line = "**Verdict:** " + ("; ".join(clauses) if clauses else "no benchmark metric")
    if comp.heldout:
        h = comp.heldout
        line += f"; held-out loss {_num(h['before'])} → {_num(h['after'])} ({_signed(h['after'] - h['before'])})"
    out = [line + ".", ""]
    for d in comp.deltas:
        kind = "improved" if d.better else "regressed" if d.worse else "unchanged"
        noise = "" if kind == "unchanged" else (" — larger than its standard error" if d.significant else " — within noise")
        out.append(f"- {kind}: {_describe(d)}{noise}")
    return out + ["", "Two-sample z-test on lm-eval's per-task standard errors, two-sided, α = 0.05.", ""]


def _before_after(comp: Comparison | None, where: Path, name: str) -> list[str]:
    out = ["## Before / after", ""]
    if comp is None or not comp.deltas:
        return out + ["No before/after results.", ""]
    s = comp.settings
    out += [
        (f"Model `{comp.model.get('path')}`, adapter `{(comp.adapter or {}).get('path')}`. "
        f"Same settings for both: limit {s.get('limit') if s.get('limit') is not None else 'none (every item)'}, few-shot {s.get('num_fewshot') if s.get('num_fewshot') is not None else 'task default'}, "
        f"chat template {'on' if s.get('apply_chat_template') else 'off'}, system instruction {repr(s['system_instruction']) if s.get('system_instruction') else 'none'}, "
        f"BOS {'added' if s.get('add_bos_token') else 'not added'}, generation {json.dumps(s.get('gen_kwargs') or {}, sort_keys=True)}, seed {s.get('seed')}."),
        "",
    ]  # fmt: skip
    rows = [[d.task, d.metric, d.n, _num(d.before), _num(d.after), _signed(d.delta), f"{_num(d.before_stderr)} / {_num(d.after_stderr)}",
             "–" if d.z is None else f"{d.z:.2f}", _p(d.p)] for d in comp.deltas]  # fmt: skip
    out += _table(["task", "metric", "n", "base", "base+adapter", "Δ", "stderr (base / adapter)", "z", "p"], rows)
    before_after_figure(comp.deltas, where / name)
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
                out += [f"**item {item.doc_id}**", ""]
                out += _block("prompt", item.prompt) + _block("base", item.before) + _block("base+adapter", item.after) + _block("target", item.target)
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


def _data_card(run: Path, info: dict[str, Any]) -> list[str]:
    out = ["## Data card", ""]
    ingest, dedup, check, stats = (_json(run / f"{n}.json") for n in ("ingest", "dedup", "check", "stats"))
    rows: list[list[Any]] = []
    if ingest:
        rows.append(["rows read", ingest.get("read")])
        rows.append(["rejected at ingest", ingest.get("rejected")])
        rows += [[f"rejected: {k}", v] for k, v in sorted((ingest.get("rejected_by_reason") or {}).items())]
    if dedup:
        c = dedup.get("counts", {})
        rows.append(["removed by dedup", c.get("removed")])
        rows += [[f"removed: {k}", c[k]] for k in ("exact", "near", "contaminated", "leaked", "manual") if c.get(k)]
        rows.append(["kept after dedup", c.get("kept")])
    ex = info.get("examples") or {}
    if ex:
        rows += [[f"dropped before training: {k}", v] for k, v in sorted((ex.get("dropped") or {}).items())]
        rows += [["trained on", ex.get("train")], ["held out", ex.get("eval")]]
    if stats:
        cols = stats.get("columns", {})
        for col in ("tokens", "trained_tokens"):
            d = cols.get(col)
            if d:
                rows.append([f"{col.replace('_', ' ')} per example (mean / p50 / p90 / max)",
                             f"{_num(d.get('mean'), 1)} / {d.get('p50')} / {d.get('p90')} / {d.get('max')}"])  # fmt: skip
        if stats.get("trained_share") is not None:
            rows.append(["trained-token share", f"{100 * stats['trained_share']:.1f}%"])
    if not rows and not check:
        return out + ["No data summaries in the run directory (ingest.json, dedup.json, check.json, stats.json).", ""]
    if rows:
        out += _table(["", "rows"], rows)
    if check:
        sev = check.get("severity_counts") or {}
        out += [f"Checks over {check.get('rows')} rows: " + ", ".join(f"{v} {k}" for k, v in sev.items()) + ".", ""]
        findings = [[f.get("severity"), f.get("code"), len(f.get("example_ids") or []), f.get("message")] for f in check.get("findings") or []]
        if findings:
            out += _table(["severity", "code", "examples", "finding"], findings)
    missing = [f"{n}.json" for n, v in (("ingest", ingest), ("dedup", dedup), ("check", check), ("stats", stats)) if not v]
    if missing:
        out += [f"Not recorded: {', '.join(missing)}.", ""]
    return out


def _training(run: Path, info: dict[str, Any], recipe: dict[str, Any], where: Path, name: str) -> list[str]:
    out = ["## Training", ""]
    if not info and not recipe:
        return out + ["No training record (run.json, recipe.yaml).", ""]
    r, lora, train, quant = info.get("result") or {}, recipe.get("lora") or {}, recipe.get("train") or {}, recipe.get("quant") or {}
    model = recipe.get("model") or {}
    n_train, n_total = r.get("trainable_params"), r.get("total_params")
    params = f"{n_train:,} of {n_total:,} ({100 * n_train / n_total:.2f}%)" if n_train and n_total else "–"
    targets = lora.get("target_modules")
    rows = [
        ["model", model.get("name", info.get("model"))],
        ["method", f"{'QLoRA (4-bit base)' if info.get('quantized') else 'LoRA'}; r {lora.get('r')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')}"
                   + (", DoRA" if lora.get("use_dora") else "") + (", rsLoRA" if lora.get("use_rslora") else "")],
        ["targets", ", ".join(targets) if isinstance(targets, list) else targets],
        ["trainable parameters", params],
        ["schedule", f"{str(train.get('max_steps')) + ' steps' if train.get('max_steps') else str(train.get('epochs')) + ' epochs'}; lr {train.get('learning_rate')} {train.get('lr_scheduler')}, warmup {train.get('warmup_ratio')}"],
        ["batch", f"{train.get('per_device_batch_size')} × {train.get('gradient_accumulation')} accumulation"
                  + (f" × {info['processes']} processes" if (info.get("processes") or 1) > 1 else "")],
        ["loss on", (recipe.get("mask") or {}).get("strategy")],
        ["backend", ", ".join(str(x) for x in (info.get("backend"), info.get("precision"), info.get("optimizer")) if x)],
        ["steps", r.get("steps")],
        ["loss (first → last)", f"{_num(r.get('first_loss'), 4)} → {_num(r.get('last_loss'), 4)}"],
        ["eval loss (last)", _num(r.get("eval_loss"), 4)],
        ["tokens/s (median)", _num(r.get("tokens_per_s"), 1)],
        ["duration", f"{info['duration_s']:.0f} s" if isinstance(info.get("duration_s"), (int, float)) else "not recorded"],
        ["hardware", info.get("hardware") or "not recorded"],
    ]  # fmt: skip
    if info.get("distributed"):  # runs recorded before processes were counted say nothing here
        rows.insert(rows.index(next(r for r in rows if r[0] == "backend")), ["processes", info["distributed"]])
    if quant.get("load_in_4bit") and not info.get("quantized"):
        rows.insert(2, ["note", "the recipe asked for 4-bit; this platform trained without it"])
    out += _table(["", ""], [[k, "–" if v is None else v] for k, v in rows])
    log = _json(run / "train_log.json")
    if isinstance(log, list) and loss_figure(log, where / name, title=f"{recipe.get('name') or run.name}: loss"):
        out += [f"![training and eval loss]({name})", ""]
    return out


def _reproducibility(run: Path, info: dict[str, Any], recipe: dict[str, Any], base: EvalResults | None, adapted: EvalResults | None) -> list[str]:
    out = ["## Reproducibility", ""]
    seeds = [["data split / shuffle", (recipe.get("data") or {}).get("seed")], ["training", (recipe.get("train") or {}).get("seed")]]
    if base:
        seeds.append(["evaluation", base.settings.get("seed")])
    out += _table(["seed", "value"], [[k, "–" if v is None else v] for k, v in seeds])
    hashes = [
        ["training data (ids + labels)", info.get("data_hash")],
        ["recipe.yaml", _file_hash(run / "recipe.yaml")],
        ["tokenizer", info.get("tokenizer_hash") or _tokenizer_hash(run / "adapter")],
        ["chat template", info.get("template_hash")],
    ]
    if base:
        hashes.append(["base model", base.model.get("fingerprint")])
    if adapted and adapted.adapter:
        hashes.append(["adapter", adapted.adapter.get("fingerprint")])
    for task, t in sorted((base.tasks if base else {}).items()):
        hashes.append([f"task config: {task}", t.config_hash])
    out += _table(["what", "hash"], [[k, f"`{v}`" if v else "not recorded"] for k, v in hashes])
    versions = dict(info.get("versions") or {})
    for res in (base, adapted):
        for k, v in (res.versions if res else {}).items():
            versions.setdefault(k, v)
    if versions:
        out += _table(["package", "version"], [[k, v or "not installed"] for k, v in sorted(versions.items())])
    return out


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _tokenizer_hash(folder: Path) -> str | None:
    files = [folder / n for n in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja") if (folder / n).is_file()]
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]
