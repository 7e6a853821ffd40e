"""The report's record sections: the data card (every row accounted for), training as applied, reproducibility."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.eval.results import EvalResults


def read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WorkbenchError(f"{path}: not valid JSON: {e}") from None


def num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


# --- data card ----------------------------------------------------------------------------------


def data_card(run: Path, info: dict[str, Any], recipe: dict[str, Any] | None = None) -> list[str]:
    """Rows read, and where each one went: rejected, removed by reason, over the limit, held out, too long,
    dropped before training, trained on. The ledger must add up to the rows read; the card says whether it does."""
    out = ["## Data card", ""]
    ingest, dedup, check, stats = (read_json(run / f"{n}.json") for n in ("ingest", "dedup", "check", "stats"))
    rows: list[list[Any]] = []
    ledger: list[int] = []

    def add(label: str, n: Any, count: bool = True) -> None:
        rows.append([label, n])
        if count and isinstance(n, int):
            ledger.append(n)

    read = ingest.get("read") if ingest else None
    if ingest:
        rows.append(["rows read", read])
        add("rejected at ingest", ingest.get("rejected"), count=True)
        rows += [[f"rejected: {k}", v] for k, v in sorted((ingest.get("rejected_by_reason") or {}).items())]
    split = (dedup or {}).get("heldout_split") or {}
    if dedup:
        c = dedup.get("counts", {})
        add("removed by dedup", c.get("removed"))
        rows += [[f"removed: {k}", c[k]] for k in ("exact", "near", "contaminated", "leaked", "manual") if c.get(k)]
        rows.append(["kept after dedup", c.get("kept")])
        if split.get("over_limit"):
            add(f"over data.limit={split.get('limit')}", split["over_limit"])
        if split.get("rows"):
            add(f"held out ({split.get('fraction')} of the rows used)", split["rows"])
    too_long = (stats or {}).get("too_long_removed")
    if isinstance(too_long, int):
        add("removed: too_long (over model.max_length)", too_long)
    ex = info.get("examples") or {}
    if ex:
        # rows of a separate held-out file are not among the rows read; their drops are shown apart
        dropped = {k: v for k, v in sorted((ex.get("dropped") or {}).items()) if not k.startswith(("heldout:", "reject:"))}
        for k, v in dropped.items():
            add(f"dropped before training: {k}", v)
        add("trained on", ex.get("train"))
        fraction = (recipe or {}).get("data", {}).get("heldout")
        if not split.get("rows") and isinstance(fraction, float):
            add(f"held out ({fraction} of the rows)", ex.get("eval"))
        elif not split.get("rows"):
            rows.append(["held out (a separate file, not among the rows read)", ex.get("eval")])
    if isinstance(read, int) and ledger:
        total = sum(ledger)
        verdict = "every row accounted for" if total == read else f"{read - total:+d} rows unaccounted for"
        rows.append(["rows accounted for", f"{total} of {read}: {verdict}"])
    if stats:
        cols = stats.get("columns", {})
        for col in ("tokens", "trained_tokens"):
            d = cols.get(col)
            if d:
                rows.append([f"{col.replace('_', ' ')} per example (mean / p50 / p90 / max)",
                             f"{num(d.get('mean'), 1)} / {d.get('p50')} / {d.get('p90')} / {d.get('max')}"])  # fmt: skip
        if stats.get("trained_share") is not None:
            rows.append(["trained-token share", f"{100 * stats['trained_share']:.1f}%"])
    if not rows and not check:
        return out + ["No data summaries in the run directory (ingest.json, dedup.json, check.json, stats.json).", ""]
    if rows:
        out += table(["", "rows"], rows)
    if check:
        sev = check.get("severity_counts") or {}
        out += [f"Checks over {check.get('rows')} rows: " + ", ".join(f"{v} {k}" for k, v in sev.items()) + ".", ""]
        findings = [[f.get("severity"), f.get("code"), len(f.get("example_ids") or []), f.get("message")] for f in check.get("findings") or []]
        if findings:
            out += table(["severity", "code", "examples", "finding"], findings)
    missing = [f"{n}.json" for n, v in (("ingest", ingest), ("dedup", dedup), ("check", check), ("stats", stats)) if not v]
    if missing:
        out += [f"Not recorded: {', '.join(missing)}.", ""]
    return out


# --- training -----------------------------------------------------------------------------------


def applied_adapter(run: Path) -> dict[str, Any]:
    """The adapter as PEFT saved it (adapter/adapter_config.json): what training applied, not what the recipe asked."""
    cfg = read_json(run / "adapter" / "adapter_config.json")
    return cfg if isinstance(cfg, dict) else {}


def training(run: Path, info: dict[str, Any], recipe: dict[str, Any], figure: str | None) -> list[str]:
    out = ["## Training", ""]
    if not info and not recipe:
        return out + ["No training record (run.json, recipe.yaml).", ""]
    r, lora, train, quant = info.get("result") or {}, recipe.get("lora") or {}, recipe.get("train") or {}, recipe.get("quant") or {}
    applied = applied_adapter(run)
    model = recipe.get("model") or {}
    n_train, n_total = r.get("trainable_params"), r.get("total_params")
    params = f"{n_train:,} of {n_total:,} ({100 * n_train / n_total:.2f}%)" if n_train and n_total else "–"
    rank, alpha = applied.get("r", lora.get("r")), applied.get("lora_alpha", lora.get("alpha"))
    dropout = applied.get("lora_dropout", lora.get("dropout"))
    dora = applied.get("use_dora") if applied else lora.get("use_dora")
    rslora = applied.get("use_rslora") if applied else lora.get("use_rslora")
    method = f"{'QLoRA (4-bit NF4 base)' if info.get('quantized') else 'LoRA'}; r {rank}, alpha {alpha}, dropout {dropout}"
    method += (", DoRA" if dora else "") + (", rsLoRA" if rslora else "")
    targets = (info.get("targets") or {}).get("modules") or applied.get("target_modules")
    if isinstance(targets, list):
        targets = ", ".join(sorted(targets))
    elif targets is None:
        targets = f"{lora.get('target_modules')} (as asked; not recorded as applied)"
    best = info.get("eval_loss_from") == "best checkpoint (restored)"
    segments = info.get("segments") or 1
    duration = info.get("duration_s")
    dur = f"{duration:.0f} s" if isinstance(duration, (int, float)) else "not recorded"
    if isinstance(duration, (int, float)) and segments > 1:
        dur += f" over {segments} sessions (resumed {segments - 1}×; summed)"
    rows = [
        ["model", model.get("name", info.get("model"))],
        ["method", method],
        ["targets", targets],
        ["trainable parameters", params],
        ["schedule", f"{str(train.get('max_steps')) + ' steps' if train.get('max_steps') else str(train.get('epochs')) + ' epochs'}; lr {train.get('learning_rate')} {train.get('lr_scheduler')}, warmup {train.get('warmup_ratio')}"],
        ["batch", f"{train.get('per_device_batch_size')} × {train.get('gradient_accumulation')} accumulation"
                  + (f" × {info['processes']} processes" if (info.get("processes") or 1) > 1 else "")],
        ["loss on", (recipe.get("mask") or {}).get("strategy")],
        ["backend", ", ".join(str(x) for x in (info.get("backend"), info.get("precision"), info.get("optimizer")) if x)],
        ["steps", r.get("steps")],
        ["loss (first → last)", f"{num(r.get('first_loss'), 4)} → {num(r.get('last_loss'), 4)}"],
        ["eval loss (restored best checkpoint)" if best else "eval loss (last)", num(r.get("eval_loss"), 4)],
        ["tokens/s (median)", num(r.get("tokens_per_s"), 1)],
        ["tokens trained on", f"{info['tokens']:,}" + (" (summed over sessions)" if segments > 1 else "") if isinstance(info.get("tokens"), int) else "not recorded"],
        ["duration", dur],
        ["hardware", info.get("hardware") or "not recorded"],
    ]  # fmt: skip
    if info.get("distributed"):  # runs recorded before processes were counted say nothing here
        rows.insert(rows.index(next(r for r in rows if r[0] == "backend")), ["processes", info["distributed"]])
    if quant.get("load_in_4bit") and not info.get("quantized"):
        rows.insert(2, ["note", "the recipe asked for 4-bit; this platform trained without it"])
    out += table(["", ""], [[k, "–" if v is None else v] for k, v in rows])
    if figure:
        out += [f"![training and eval loss]({figure})", ""]
    return out


# --- reproducibility ----------------------------------------------------------------------------


def reproducibility(run: Path, info: dict[str, Any], recipe: dict[str, Any], base: EvalResults | None, adapted: EvalResults | None) -> list[str]:
    out = ["## Reproducibility", ""]
    seeds = [["data split / shuffle", (recipe.get("data") or {}).get("seed")], ["training", (recipe.get("train") or {}).get("seed")]]
    if base:
        seeds.append(["evaluation", base.settings.get("seed")])
    out += table(["seed", "value"], [[k, "–" if v is None else v] for k, v in seeds])
    hashes = [
        ["training data (ids + labels)", info.get("data_hash")],
        ["recipe.yaml", file_hash(run / "recipe.yaml")],
        ["tokenizer", info.get("tokenizer_hash") or tokenizer_hash(run / "adapter")],
        ["chat template", info.get("template_hash")],
    ]
    if base:
        hashes.append(["base model", base.model.get("fingerprint")])
    if adapted and adapted.adapter:
        hashes.append(["adapter", adapted.adapter.get("fingerprint")])
    for task, t in sorted((base.tasks if base else {}).items()):
        hashes.append([f"task config: {task}", t.config_hash])
    out += table(["what", "hash"], [[k, f"`{v}`" if v else "not recorded"] for k, v in hashes])
    versions = dict(info.get("versions") or {})
    for res in (base, adapted):
        for k, v in (res.versions if res else {}).items():
            versions.setdefault(k, v)
    if versions:
        out += table(["package", "version"], [[k, v or "not installed"] for k, v in sorted(versions.items())])
    return out


def file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def tokenizer_hash(folder: Path) -> str | None:
    files = [folder / n for n in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja") if (folder / n).is_file()]
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]
