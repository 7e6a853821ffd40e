"""The `workbench` command line: each command parses its flags, calls one library function, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.errors import UsageError, WorkbenchError, first_line

app = typer.Typer(
    name="workbench",
    help="Make a fine-tuning dataset trustworthy before a GPU hour is spent on it: "
    "ingest, format with the chat template, dedup, verify loss masks, train QLoRA, report before/after.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def parse_map(pairs: list[str] | None) -> dict[str, str]:
    """`--map field=column` pairs as a dict; a malformed pair is a usage error naming it."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--map {pair!r} is not FIELD=COLUMN", "for example --map instruction=question")
        mapping[key.strip()] = value.strip()
    return mapping


def _version(value: bool) -> None:
    if value:
        from workbench import __version__

        print(f"workbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Make a fine-tuning dataset trustworthy before training; measure the result after."""


# --- commands -------------------------------------------------------------------------------
# Each command's body lives here; rendering helpers live in workbench/console/<command>.py.


@app.command()
def ingest(
    inputs: Annotated[list[str], typer.Argument(help="JSONL/JSON/CSV/Parquet files, save_to_disk dirs, or hf:NAME[:CONFIG][#SPLIT].", metavar="INPUT...", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write canonical messages (.jsonl, .parquet, or a dir for an HF dataset).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Input schema: auto, messages, sharegpt, alpaca, self_instruct, query_response, prompt_completion, question_answer, text.")] = "auto",
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Read a field from another column: FIELD=COLUMN, e.g. instruction=question (repeatable).")] = None,
    rejects: Annotated[Optional[Path], typer.Option("--rejects", help="Side file for rejected rows [default: <output stem>.rejects.jsonl].")] = None,
    output_format: Annotated[Optional[str], typer.Option("--output-format", help="jsonl, parquet or hf [default: from the output name].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts and findings as one JSON object on stdout.")] = False,
) -> None:
    """Read raw data in any common schema into canonical chat messages; reject bad rows with reasons.

    Every row read is either written or rejected (with file, line, field and reason in the side
    file); content problems such as mojibake or leftover placeholders are reported, not fixed.
    """
    import json

    from workbench.data import ingest_to
    from workbench.console import err, progress
    from workbench.console.ingest import render_summary

    with progress("ingesting") as update:
        report = ingest_to(inputs, output, format=format, mapping=parse_map(map), rejects_path=rejects,
                               output_format=output_format, on_progress=update)  # fmt: skip
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        render_summary(err, report)


@app.command()
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories (any format `ingest` reads).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Tokenizer dir, GGUF file or hub name: adds token and trained-token columns.")] = None,
    template: Annotated[Optional[Path], typer.Option(help="A Jinja chat template that replaces the tokenizer's.")] = None,
    template_kwargs: Annotated[Optional[str], typer.Option("--template-kwargs", help='JSON object of variables every chat-template render gets, e.g. \'{"enable_thinking": false}\'.')] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Count rows over this many tokens.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Rename a field: FIELD=COLUMN (repeatable).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG histogram of example lengths here.")] = None,
    frame_out: Annotated[Optional[Path], typer.Option("--frame", help="Write the per-example frame (.parquet or .csv).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Per-example statistics: turns, roles, characters, and with --model tokens and trained tokens."""
    import json

    from workbench import data as wd
    from workbench.console import err, out, progress, say
    from workbench.console.stats import render_summary

    from workbench.outputs import guard

    if max_length is not None and max_length <= 0:
        raise UsageError(f"--max-length must be positive, got {max_length}")
    guard([("--frame", frame_out), ("--plot", plot)], [*paths, template, model])
    with progress("reading") as update:
        data = wd.load(paths, format=format, mapping=parse_map(map), on_progress=update).require_rows()
    tokenizer = None
    if model:
        from workbench.template import load_tokenizer, parse_template_kwargs
        from workbench.train import resolve_model_name

        tokenizer = load_tokenizer(resolve_model_name(model), template=template, template_kwargs=parse_template_kwargs(template_kwargs))
    with progress("tokenising", total=len(data.conversations)) as update:
        df = wd.frame(data.conversations, tokenizer=tokenizer, max_length=max_length, on_progress=update)
    summary = wd.summary(df, max_length=max_length)
    summary["rows_read"] = data.rows_read
    summary["rejected"] = len(data.rejects)
    col = "tokens" if tokenizer is not None else "chars"
    if plot:
        wd.plot(df, plot, max_length=max_length)
    if frame_out:
        from workbench.outputs import atomic_path

        with atomic_path(frame_out) as tmp:
            (df.write_csv if str(frame_out).endswith(".csv") else df.write_parquet)(tmp)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    render_summary(out, summary, wd.histogram(df[col], bins=12, clip=0.99), col)
    if data.rejects:
        say(err, f"{len(data.rejects)} of {data.rows_read} rows rejected (see `workbench ingest` for the side file)")
    if plot:
        say(err, f"wrote {plot}")


@app.command()
def mask(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories (any format `ingest` reads).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Tokenizer dir, GGUF file, hub name, or tiny:<family> / tiny-pretrained:<family> as `run` builds them.", show_default=False)],
    template: Annotated[Optional[Path], typer.Option(help="A Jinja chat template that replaces the tokenizer's.")] = None,
    template_kwargs: Annotated[Optional[str], typer.Option("--template-kwargs", help='JSON object of variables every chat-template render gets, e.g. \'{"enable_thinking": false}\'.')] = None,
    index: Annotated[Optional[int], typer.Option("--index", "-i", help="Show only the conversation at this 0-based index.")] = None,
    id: Annotated[Optional[str], typer.Option("--id", help="Show only the conversation with this id (a unique prefix will do).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many conversations to show without --index/--id.")] = 5,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="What is trained: assistant (every assistant turn), last (the last one), all (every token).")] = "assistant",
    no_eot: Annotated[bool, typer.Option("--no-eot", help="Leave the end-of-turn token of each answer untrained.")] = False,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Truncate to this many tokens, as training would.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Rename a field: FIELD=COLUMN (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print ids, tokens and labels per example as JSON lines on stdout.")] = False,
) -> None:
    """Show exactly which tokens the loss trains on, per example, as the model's chat template renders them.

    Trained tokens are bright, untrained dim, special tokens marked; token boundaries, spaces (·) and
    newlines (↵) are visible. With {% generation %} tags the trained tokens are exactly what the tags
    cover (as TRL trains them); otherwise each assistant turn from the end of its generation prompt
    through its end-of-turn token. Both derivations run when both apply, and a difference is reported;
    every mask is verified: each trained region is one assistant turn, its answer closed by its
    end-of-turn token, with only the template's own text (a reasoning block, a channel header) before it.
    """
    import json

    from workbench import data as wd
    from workbench import template as mk
    from workbench.console import out
    from workbench.console.mask import render_all
    from workbench.template import load_tokenizer, parse_template_kwargs
    from workbench.train import resolve_model_name

    if strategy not in mk.STRATEGIES:
        raise UsageError(f"--strategy {strategy!r} is not one of {', '.join(mk.STRATEGIES)}")
    if max_length is not None and max_length <= 0:
        raise UsageError(f"--max-length must be positive, got {max_length}")
    data = wd.load(paths, format=format, mapping=parse_map(map)).require_rows()
    rows = mk.pick(data.conversations, index=index, id=id, limit=limit)
    tokenizer = load_tokenizer(resolve_model_name(model), template=template, template_kwargs=parse_template_kwargs(template_kwargs))
    items = mk.inspect(tokenizer, rows, strategy=strategy, train_eot=not no_eot, max_length=max_length)
    if as_json:
        for _, conv, res in items:
            print(json.dumps(mk.result_dict(tokenizer, conv, res), ensure_ascii=False))
        return
    render_all(out, tokenizer, items)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML (see recipes/).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="KEY=VALUE overrides with dotted keys, values parsed as YAML: lora.r=16 train.learning_rate=1e-4.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest complete checkpoint written with these settings and data (an error naming what changed otherwise).")] = False,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="Write the run here instead of the recipe's run_dir.")] = None,
    no_data_stages: Annotated[bool, typer.Option("--no-data-stages", help="Train on the recipe's sources as they are: no dedup, decontamination or check gate (run.json records it).")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", help="Train on N processes through accelerate launch (DDP: one per GPU, or CPU processes over gloo); with train.distributed, overrides its num_processes.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Train a LoRA/QLoRA adapter as a recipe says: Unsloth on CUDA, PEFT + TRL (+ bitsandbytes 4-bit) elsewhere.

    First runs (or reuses, when unchanged) the recipe's data stages, as `workbench run` does: ingest,
    dedup and decontamination, and the check gate. Then trains on exactly the input ids and labels
    `workbench mask` verifies. The run directory gets the adapter (PEFT format) with tokenizer and
    generation_config, the resolved recipe, data/template hashes, package versions, train_log.json,
    loss.png and checkpoints (for --resume).
    """
    import json

    from workbench import recipe as rc

    r = rc.load(recipe, overrides or [])
    if run_dir is not None:
        r = r.model_copy(update={"run_dir": str(run_dir)})
    from workbench.pipeline import guard_run
    from workbench.train import import_unsloth_first

    guard_run(r, r.resolved_run_dir(), recipe)  # before any work: the run dir and report path may not hold inputs

    import_unsloth_first(r)  # Unsloth patches transformers, TRL and PEFT at import: before anything imports them
    from transformers.utils import logging as hf_logging

    from workbench import pipeline
    from workbench.console import quiet_libraries
    from workbench.console.run import run_display
    from workbench.console.train import render_result, train_progress

    import contextlib

    from workbench.train import current_world, launch_train, should_launch
    from workbench.train import train as run_training

    quiet_libraries()
    hf_logging.disable_progress_bar()  # our own bar reports progress
    world = current_world()
    if world.size > 1:  # this process is one rank under accelerate launch / torchrun
        prepared = r.resolved_run_dir() / "data" / "checked.jsonl"
        if not no_data_stages and not prepared.is_file():
            raise UsageError("workbench train started on several processes has no checked data to train on",
                             f"run `workbench train {recipe} --nproc {world.size}` (the data stages run once, then training is "
                             "launched), or pass --no-data-stages")  # fmt: skip
        from workbench.data import load as load_rows

        rows = None if no_data_stages else load_rows([prepared]).conversations
        with train_progress(r.name or "training") if world.main else contextlib.nullcontext() as on_progress:
            result = run_training(r, resume=resume, on_progress=on_progress, prepared=rows, data_stages=not no_data_stages)
        if not world.main:
            return
    elif no_data_stages and should_launch(r, nproc):
        with train_progress(r.name or "training") as on_progress:
            result = launch_train(r, resume=resume, nproc=nproc, on_progress=on_progress, data_stages=False)
    elif no_data_stages:
        with train_progress(r.name or "training") as on_progress:
            result = pipeline.train_sources(r, resume=resume, on_progress=on_progress)
    else:
        with run_display() as hooks:
            result = pipeline.run(r, until="train", start_from="train", train_resume="required" if resume else "fresh", hooks=hooks,
                                  nproc=nproc, recipe_file=recipe).train  # fmt: skip
    if as_json:
        print(json.dumps({k: v for k, v in result.__dict__.items() if k != "log"}, indent=2, default=str))
        return
    render_result(result)


@app.command()
def plan(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="A model folder or its config.json (read locally; no weights needed); default: the recipe's model.", show_default=False)] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Estimate what this recipe runs: its targets, rank, max_length, batch, optimizer, quantization and backend.", show_default=False)] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", help="full, lora or qlora (repeatable; default all three).")] = None,
    seq: Annotated[int, typer.Option("--seq", help="Sequence length in tokens.")] = 2048,
    batch: Annotated[int, typer.Option("--batch", help="Per-device batch size.")] = 1,
    rank: Annotated[int, typer.Option("--rank", "-r", help="LoRA rank.")] = 16,
    targets: Annotated[str, typer.Option("--targets", help="all-linear, or comma-separated module names, resolved on the model built from config.json.")] = "all-linear",
    experts: Annotated[bool, typer.Option("--experts", help="MoE models: adapt the routed experts too.")] = False,
    logits: Annotated[str, typer.Option("--logits", help="full (PEFT + TRL hold every token's logits) or chunked (Unsloth's fused cross-entropy).")] = "full",
    optimizer: Annotated[str, typer.Option("--optimizer", help="adamw (fp32 moments) or adamw_8bit.")] = "adamw",
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON on stdout.")] = False,
) -> None:
    """Estimate GPU memory for full fine-tuning, LoRA and QLoRA from a model's config.json.

    Weights, adapter, gradients, optimizer states and activations (with and without gradient
    checkpointing) at the given sequence length and batch size, in GB. The adapter is counted on the
    targets as they resolve on the model (built from config.json on PyTorch's meta device: no
    weights), per layer kind; the assumptions are printed with the table.
    """
    import json

    from workbench.console.train import render_plan
    from workbench.train import METHODS, estimate, for_recipe

    if recipe is not None:
        from workbench import recipe as rc

        p = for_recipe(rc.load(recipe), model)
    else:
        if model is None:
            raise UsageError("plan needs --model (a model folder or config.json) or --recipe")
        names: str | list[str] = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        methods = tuple(method) if method else METHODS
        p = estimate(model, seq=seq, batch=batch, rank=rank, methods=methods, optimizer=optimizer, targets=names, experts=experts, logits=logits)
    if as_json:
        print(json.dumps(p.to_dict(), indent=2))
        return
    render_plan(p)


@app.command()
def merge(
    adapters: Annotated[list[Path], typer.Argument(help="Adapter folder(s); several are combined with --combination first.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the merged model goes.", show_default=False)],
    base: Annotated[Optional[str], typer.Option("--base", help="Base model folder; default: the one the first adapter names.")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Comma-separated weight per adapter (default equal).")] = None,
    combination: Annotated[str, typer.Option("--combination", help="linear (exact weighted sum of the adapters' weight deltas; cat is the same), ties, dare_ties, dare_linear or magnitude_prune (on the full deltas), svd (the delta sum at reduced rank).")] = "linear",
    density: Annotated[Optional[float], typer.Option("--density", help="Fraction of weights kept by ties / dare_* / magnitude_prune.")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="bfloat16, float16 or float32.")] = "bfloat16",
) -> None:
    """Merge a LoRA adapter into its base model and save a 16-bit model (merge_and_unload).

    Several adapters are combined on their weight deltas (scaling * B @ A): linear adds them with
    the weights exactly, TIES/DARE trim and elect signs on the full deltas. The tokenizer, the
    adapter's generation_config (with the end-of-turn stop token) and a mergekit.yaml stating the
    same merge for full models are saved with the model.
    """
    from workbench.console import err, say
    from workbench.outputs import guard
    from workbench.train import merge as do_merge

    guard([("-o", output)], [*adapters, base])
    if dtype not in ("bfloat16", "float16", "float32"):
        raise UsageError(f"--dtype {dtype!r} is not bfloat16, float16 or float32")
    ws = None
    if weights:
        try:
            ws = [float(x) for x in weights.split(",")]
        except ValueError:
            raise UsageError(f"--weights {weights!r} is not a comma-separated list of numbers") from None
    path = do_merge(adapters, output, base=base, weights=ws, combination=combination, density=density, dtype=dtype)
    say(err, f"wrote {path}")


@app.command()
def dedup(
    inputs: Annotated[list[str], typer.Argument(help="Data files (any format `ingest` reads); with --engine ray also directories and object-store URLs (s3://...).", metavar="INPUT...", show_default=False)],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Kept rows (.jsonl, .parquet or a dir) [default: <input stem>.dedup.jsonl; --engine ray: the directory <input stem>.dedup].", show_default=False)] = None,
    removed: Annotated[Optional[str], typer.Option("--removed", help="Removed rows with reason, cluster, kept id and similarity [default: <input stem>.removed.jsonl; --engine ray: the directory <input stem>.removed].", show_default=False)] = None,
    against: Annotated[Optional[list[Path]], typer.Option("--against", help="Eval or held-out data (any ingest format, or a local lm-eval task YAML): remove rows that match it (repeatable).", show_default=False)] = None,
    leak: Annotated[bool, typer.Option("--leak", help="Call --against matches 'leaked' (another split of this data), not 'contaminated'. Without it, files named like train/val/dev splits are 'leaked', others 'contaminated'.")] = False,
    threshold: Annotated[float, typer.Option("--threshold", help="Jaccard similarity at or above which rows are near duplicates.")] = 0.8,
    on: Annotated[str, typer.Option("--on", help="Text compared: conversation, prompt or response (system turns never count).")] = "conversation",
    keep: Annotated[str, typer.Option("--keep", help="Row a cluster keeps: first, longest or shortest.")] = "first",
    num_perm: Annotated[int, typer.Option("--num-perm", help="MinHash permutations.")] = 128,
    ngram: Annotated[int, typer.Option("--ngram", help="Words per shingle.")] = 5,
    bands: Annotated[int, typer.Option("--bands", help="LSH bands (bands x rows <= num-perm).")] = 16,
    rows: Annotated[int, typer.Option("--rows", help="LSH rows per band.")] = 8,
    contam_ngram: Annotated[int, typer.Option("--contam-ngram", help="Words per n-gram matched against --against items (0: off).")] = 13,
    no_exact: Annotated[bool, typer.Option("--no-exact", help="Skip exact-duplicate removal.")] = False,
    no_near: Annotated[bool, typer.Option("--no-near", help="Skip MinHash near-duplicate removal (and near matching of --against items).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the MinHash permutations.")] = 1,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Read a field from another column: FIELD=COLUMN (repeatable).")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the summary as JSON here.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and report, write no kept/removed files.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local (this process, numba) or ray (Ray Data: a local Ray, or the cluster RAY_ADDRESS names; outputs are directories of JSONL shards).")] = "local",
    workers: Annotated[Optional[int], typer.Option("--workers", help="--engine ray without RAY_ADDRESS: CPUs of the local Ray [default: all].", show_default=False)] = None,
    canonical: Annotated[bool, typer.Option("--canonical", help="Write kept and removed rows as canonical messages (as ingest does), not as the input's own rows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Remove exact and near duplicates (MinHash LSH, verified by exact Jaccard) and rows that match eval sets.

    Kept rows are written as they are in the input (a JSONL row byte for byte; --canonical writes
    canonical messages). Every removed row is written with its reason (exact, near, contaminated,
    leaked), its cluster, the id and file:line of the row kept in its place and the similarity;
    rows read = kept + removed (+ rejected).
    """
    import json

    from workbench import dedup as dd
    from workbench.console import err, progress
    from workbench.console.dedup import render_summary

    config = dd.DedupConfig(threshold=threshold, on=on, keep=keep, num_perm=num_perm, ngram=ngram, bands=bands, rows=rows,
                            seed=seed, exact=not no_exact, near=not no_near, contam_ngram=contam_ngram)  # fmt: skip
    config.validate()
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine!r} is not local or ray")
    if workers is not None and (engine != "ray" or workers < 1):
        raise UsageError("--workers goes with --engine ray and is at least 1")
    if engine == "ray" and canonical:
        raise UsageError("--canonical goes with --engine local", "the Ray engine writes canonical messages already")
    if engine == "ray":
        run = dd.run_ray(inputs, output=output, removed=removed, against=[str(a) for a in against or []],
                         config=config, format=format, mapping=parse_map(map), dry_run=dry_run, report=report, workers=workers)  # fmt: skip
    else:
        run = dd.run_files([str(Path(p)) for p in inputs], output=Path(output) if output else None, removed=Path(removed) if removed else None, against=[str(a) for a in against or []],
                           leak=leak, config=config, format=format, mapping=parse_map(map), dry_run=dry_run, report=report,
                           progress=progress, canonical=canonical)  # fmt: skip
    if as_json:
        print(json.dumps(run.to_dict(), ensure_ascii=False))
    else:
        render_summary(err, run)


@app.command()
def check(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories (any format `ingest` reads).", metavar="DATA...", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Tokenizer dir (its config.json / generation_config.json are read when present), GGUF file, hub name, or tiny:<family> / tiny-pretrained:<family>.", show_default=False)],
    template: Annotated[Optional[Path], typer.Option(help="A Jinja chat template that replaces the tokenizer's.")] = None,
    template_kwargs: Annotated[Optional[str], typer.Option("--template-kwargs", help='JSON object of variables every chat-template render gets, e.g. \'{"enable_thinking": false}\'.')] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Report what truncation to this many tokens cuts.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="What is trained: assistant (every assistant turn), last (the last one), all (every token).")] = "assistant",
    fail_on: Annotated[str, typer.Option("--fail-on", help="Exit 1 when a finding this severe or worse exists: error, warning or info.")] = "error",
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Rename a field: FIELD=COLUMN (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report (findings, counts, probed facts) as JSON on stdout.")] = False,
) -> None:
    """Check a dataset against a model's tokenizer and chat template before training.

    Template errors per row, hidden or moved system prompts, double BOS, pad == EOS, stop tokens
    that disagree with the template's end of turn, end-of-turn tokens missing from the labels,
    train/inference prompt parity, templates that rewrite earlier turns, mask verification and
    truncation at --max-length. Exits 1 when a finding at --fail-on or worse exists.
    """
    import gc
    import json

    from workbench import data as wd
    from workbench.checks import check_options, run_checks
    from workbench.console import err, out, progress, say
    from workbench.console.check import render_report
    from workbench.template import load_tokenizer, parse_template_kwargs
    from workbench.train import resolve_model_name

    check_options(strategy=strategy, max_length=max_length, fail_on=fail_on)
    kwargs = parse_template_kwargs(template_kwargs)
    with progress("reading") as update:
        data = wd.load(paths, format=format, mapping=parse_map(map), on_progress=update).require_rows()  # "no findings" on no rows would lie
    tokenizer = load_tokenizer(resolve_model_name(model), template=template, template_kwargs=kwargs)
    gc.freeze()  # the rows read live until exit: the collector need not walk them again and again while they are checked
    with progress("checking", total=len(data.conversations)) as update:
        report = run_checks(tokenizer, data.conversations, max_length=max_length, strategy=strategy, on_progress=update)
    if as_json:
        print(json.dumps({**report.to_dict(), "rows_read": data.rows_read, "rejected": len(data.rejects)}, ensure_ascii=False))
    else:
        render_report(out, report, fail_on)
        if data.rejects:
            say(err, f"{len(data.rejects)} of {data.rows_read} rows rejected by ingest (see `workbench ingest` for the side file)")
    if report.fails(fail_on):
        sys.exit(1)  # typer.Exit would be returned, not raised, under standalone_mode=False


@app.command()
def tui(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files (any format `ingest` reads); one JSONL file opens lazily, so a million rows show at once.", metavar="INPUT...", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Tokenizer dir, GGUF file, hub name, or tiny:<family> / tiny-pretrained:<family>: adds tokens, trained tokens, the token view and checks.")] = None,
    template: Annotated[Optional[Path], typer.Option(help="A Jinja chat template that replaces the tokenizer's.")] = None,
    template_kwargs: Annotated[Optional[str], typer.Option("--template-kwargs", help='JSON object of variables every chat-template render gets, e.g. \'{"enable_thinking": false}\'.')] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Flag rows over this many tokens; masks are truncated as training would.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Rename a field: FIELD=COLUMN (repeatable).")] = None,
) -> None:
    """Browse a dataset as the trainer will see it: examples, token masks, findings, duplicates, stats; decide and export.

    Press ? in the app for its keys, ctrl+p for every action.
    """
    from workbench.data import require_usable
    from workbench.template import parse_template_kwargs
    from workbench.tui.app import run
    from workbench.tui.session import options

    if max_length is not None and max_length <= 0:
        raise UsageError(f"--max-length must be positive, got {max_length}")
    kwargs = parse_template_kwargs(template_kwargs)  # bad JSON: exit 2 before the app opens
    if kwargs and not model:
        raise UsageError("--template-kwargs goes with --model", "the template is the model's: name it with --model")
    require_usable(paths, format=format, mapping=parse_map(map))  # a missing, empty or all-rejected input: exit 1, no app
    run(options([str(p) for p in paths], model=model, template=str(template) if template else None, template_kwargs=kwargs,
                max_length=max_length, format=format, mapping=parse_map(map)))  # fmt: skip


def _limit(text: str | None) -> int | float | None:
    """--limit as a count (200) or a fraction below 1 (0.1)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--limit {text!r} is not a number", "a count such as 200, or a fraction such as 0.1") from None
    if value <= 0 or (value >= 1 and value != int(value)):
        raise UsageError(f"--limit {text} must be a positive count or a fraction below 1")
    return value if value < 1 else int(value)


@app.command(name="eval")
def eval_(
    run_dir: Annotated[Optional[Path], typer.Argument(help="A training run: evaluates its base model and base+adapter with the recipe's eval settings.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model: a local folder, a cached hub name, or tiny:<family>.")] = None,
    adapter: Annotated[Optional[Path], typer.Option("--adapter", "-a", help="PEFT adapter folder, evaluated on top of --model with the same settings.")] = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", "-t", help="Comma-separated lm-eval tasks: recipes/tasks names (gsm8k_local, heldout) or lm-eval's own.")] = None,
    limit: Annotated[Optional[str], typer.Option("--limit", "-l", help="Items per task: a count, or a fraction below 1.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the results JSON here [default with RUN_DIR: RUN_DIR/eval.json].")] = None,
    num_fewshot: Annotated[Optional[int], typer.Option("--num-fewshot", help="Few-shot examples per prompt [default: the task's].")] = None,
    chat_template: Annotated[Optional[bool], typer.Option("--chat-template/--no-chat-template", help="Format prompts with the tokenizer's chat template [default: when it has one].")] = None,
    template_kwargs: Annotated[Optional[str], typer.Option("--template-kwargs", help='JSON object of variables the chat template gets in every prompt [default with RUN_DIR: model.template_kwargs of its recipe], e.g. \'{"enable_thinking": false}\'.')] = None,
    system: Annotated[Optional[str], typer.Option("--system", help="System instruction for every prompt.")] = None,
    gen: Annotated[Optional[list[str]], typer.Option("--gen", help="Generation setting KEY=VALUE, e.g. max_gen_toks=256 (repeatable).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for sampling, few-shot selection and generation [default: 1234, or the recipe's train.seed].")] = None,
    data: Annotated[Optional[list[str]], typer.Option("--data", help="A local task's data file: TASK=FILE, e.g. gsm8k_local=test.jsonl (repeatable).")] = None,
    include: Annotated[Optional[list[Path]], typer.Option("--include", help="Another folder of lm-eval task YAMLs (repeatable).")] = None,
    heldout: Annotated[Optional[Path], typer.Option("--heldout", help="Held-out messages file: loss, perplexity, sample generations, and the heldout task's data.")] = None,
    generations: Annotated[int, typer.Option("--generations", help="Sample generations per model from the held-out prompts.")] = 4,
    batch_size: Annotated[Optional[str], typer.Option("--batch-size", help="lm-eval batch size, or auto [default: auto on CUDA, 32 on CPU].")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... [default: cuda when available].")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads [default: the recipe's train.threads, else 1 on CPU].")] = None,
    four_bit: Annotated[Optional[bool], typer.Option("--4bit/--no-4bit", help="Both runs on a 4-bit NF4 base [default with RUN_DIR: as training ran].")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="hf, or vllm (CUDA; the adapter through enable_lora).")] = None,
    skip_base_check: Annotated[bool, typer.Option("--skip-base-check", help="Evaluate an adapter even if its adapter_config.json names another base model.")] = False,
    online: Annotated[bool, typer.Option("--online", help="Allow the model hub and dataset downloads (offline by default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results file's JSON on stdout.")] = False,
) -> None:
    """Run lm-eval on the base model and on base+adapter with identical settings, and compare.

    With RUN_DIR the model, adapter, tasks and settings come from the run (flags override them) and
    the results go to RUN_DIR/eval.json for `workbench report`. The held-out split adds loss,
    perplexity and a few sample generations from both models.
    """
    import json

    import yaml

    from workbench.eval import SCHEMA, Settings, compare, evaluate_pair, evaluate_run
    from workbench.eval import save as save_results
    from workbench.console import err, out, say
    from workbench.console.evaluate import render_comparison, render_single

    from workbench.outputs import guard
    from workbench.template import parse_template_kwargs

    gen_kwargs = {k: yaml.safe_load(v) for k, v in parse_map(gen).items()} if gen else None
    chat_args = parse_template_kwargs(template_kwargs) if template_kwargs is not None else None
    task_list = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    data_map = parse_map(data) if data else None
    run_files = [run_dir / n for n in ("recipe.yaml", "run.json", "adapter", "heldout.jsonl")] if run_dir else []
    guard([("-o", output)], [*run_files, adapter, model, heldout, *(data_map or {}).values(), *(include or [])])
    bs: int | str | None = None if batch_size is None else int(batch_size) if batch_size.isdigit() else batch_size
    note = lambda msg: say(err, msg, style="dim")  # noqa: E731
    if run_dir is not None:
        if model or adapter:
            raise UsageError("give RUN_DIR or --model/--adapter, not both")
        extra = {k: v for k, v in {"num_fewshot": num_fewshot, "apply_chat_template": chat_template, "system_instruction": system,
                                   "gen_kwargs": gen_kwargs, "seed": seed, "device": device, "batch_size": bs, "threads": threads,
                                   "load_in_4bit": four_bit, "backend": backend, "template_kwargs": chat_args}.items() if v is not None}  # fmt: skip
        if heldout:
            extra["heldout"] = str(heldout)
        base, adapted, dest = evaluate_run(run_dir, out=output, tasks=task_list, limit=_limit(limit), include_path=include,
                                              data=data_map, allow_online=online, on_progress=note, generations=generations, **extra)  # fmt: skip
    else:
        if not model:
            raise UsageError("give a RUN_DIR, or --model (and --adapter)", "workbench eval runs/x  or  workbench eval --model BASE --adapter runs/x/adapter --tasks gsm8k_local")
        if not task_list and not heldout:
            raise UsageError("--tasks names nothing to run", "e.g. --tasks gsm8k_local,heldout")
        settings = Settings(tasks=task_list or [], limit=_limit(limit), num_fewshot=num_fewshot, apply_chat_template=chat_template,
                               system_instruction=system, gen_kwargs=gen_kwargs, seed=seed if seed is not None else 1234, batch_size=bs,
                               device=device, heldout=str(heldout) if heldout else None, generations=generations, threads=threads,
                               load_in_4bit=bool(four_bit), backend=backend or "hf", template_kwargs=chat_args)  # fmt: skip
        runs = evaluate_pair(model, adapter, settings, adapters=None if adapter else [None], include_path=include,
                                data=data_map, check_base=not skip_base_check, allow_online=online, on_progress=note)  # fmt: skip
        base, adapted = runs[0], (runs[1] if adapter else None)
        dest = save_results(output, base, adapted) if output else None
    if as_json:
        print(json.dumps({"schema": SCHEMA, "base": base.to_dict(), "adapter": adapted.to_dict() if adapted else None}, sort_keys=True))
    elif adapted is not None:
        render_comparison(out, compare(base, adapted))
    else:
        render_single(out, base)
    if dest is not None:
        say(err, f"wrote {dest}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A training run directory (evaluated with `workbench eval RUN_DIR` for the before/after sections).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Markdown file; PNG figures are written beside it [default: the recipe's report.path, else RUN_DIR/report.md].")] = None,
    results: Annotated[Optional[Path], typer.Option("--results", help="A results JSON to use instead of RUN_DIR/eval.json.")] = None,
    fail_on_regress: Annotated[bool, typer.Option("--fail-on-regress", help="Exit with code 3 when the decision is DON'T SHIP (for CI).")] = False,
) -> None:
    """Write the run's report: the SHIP / DON'T SHIP decision and its evidence, before/after table, per-item
    flips, held-out loss and samples, data card, training curves and reproducibility details (markdown + PNG)."""
    from workbench.console import err, say
    from workbench.report import decision_of, write_report

    dest = write_report(run_dir, output, results=results)
    say(err, f"wrote {dest}")
    _ship_or_exit(decision_of(run_dir, results=results), fail_on_regress)


def _ship_or_exit(decision: object, fail_on_regress: bool) -> None:
    """Print the decision line; with --fail-on-regress, DON'T SHIP exits 3 (an error is 1, a usage mistake 2)."""
    from rich.markup import escape

    from workbench.console import err

    if decision is None:
        return
    err.print(escape(decision.line.replace("**", "")), soft_wrap=True)  # type: ignore[attr-defined]
    if fail_on_regress and not decision.ship:  # type: ignore[attr-defined]
        raise typer.Exit(3)


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML (see recipes/).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="KEY=VALUE overrides with dotted keys: data.limit=200 train.max_steps=20.", show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Stop after this stage: ingest, dedup, check, train, eval, report.")] = None,
    start_from: Annotated[Optional[str], typer.Option("--from", help="Rerun from this stage on, even when unchanged.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rerun every stage.")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", help="Train on N processes through accelerate launch (the other stages run once); with train.distributed, overrides its num_processes.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stage records as JSON on stdout.")] = False,
    fail_on_regress: Annotated[bool, typer.Option("--fail-on-regress", help="Exit with code 3 when the report's decision is DON'T SHIP (for CI).")] = False,
) -> None:
    """Run a recipe end to end: ingest, dedup/decontaminate, check, train, eval, report.

    Each stage writes into the run directory and is skipped when its inputs, settings, tokenizer
    and template are unchanged (a content hash of all of them), so an edit reruns exactly what it
    affects, an interrupted run resumes where it stopped, and rerunning a finished recipe is a no-op
    that prints the report path. A check finding at the recipe's check.fail_on level stops the run
    before training and says which finding and how to fix it.
    """
    import json

    from workbench import pipeline
    from workbench import recipe as rc
    from workbench.console.run import render_table, run_display

    r = rc.load(recipe, overrides or [])
    import os

    from workbench.train import import_unsloth_first

    import_unsloth_first(r)  # before anything imports transformers (Unsloth patches it at import)
    from transformers.utils import logging as hf_logging

    from workbench.console import quiet_libraries

    quiet_libraries()
    hf_logging.disable_progress_bar()
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's bars would flood a log file
    with run_display() as hooks:
        result = pipeline.run(r, until=until, start_from=start_from, force=force, hooks=hooks, recipe_file=recipe, nproc=nproc)
    if as_json:
        print(json.dumps(pipeline.as_dict(result), indent=2, default=str))
    else:
        render_table(result)
    if result.report is not None:
        from workbench.report import decision_of

        _ship_or_exit(decision_of(result.run_dir), fail_on_regress)


def main() -> None:
    """Entry point: run the app; user mistakes print one clean error and exit 1 (2 for usage)."""
    from workbench.console import print_error

    try:
        # with standalone_mode off, click returns (not raises) the code of a typer.Exit(n)
        code = app(standalone_mode=False, prog_name="workbench")
        if code == 130:  # typer turns Ctrl-C into Exit(130); the outputs' temps are already gone
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except WorkbenchError as e:
        print_error(e)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        _interrupted()
    except typer.TyperException as e:  # click's usage errors, as vendored by typer
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:
            print(f"error: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:  # a file-system fault no command turned into a message (a full disk, a vanished folder)
        where = f": {e.filename}" if e.filename else ""
        print_error(WorkbenchError(f"{e.strerror or first_line(e)}{where}", "a file-system error: check free space, permissions and the paths given"))
        sys.exit(1)


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
    main()
