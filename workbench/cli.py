"""The `workbench` command line: each command parses its flags, calls one library function, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.errors import UsageError, WorkbenchError

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
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories (any format `ingest` reads).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Tokenizer dir, GGUF file or hub name: adds token and trained-token columns.")] = None,
    template: Annotated[Optional[Path], typer.Option(help="A Jinja chat template that replaces the tokenizer's.")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Count rows over this many tokens.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="Force the input schema instead of detecting it.")] = None,
    map: Annotated[Optional[list[str]], typer.Option("--map", help="Rename a field: FIELD=COLUMN (repeatable).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG histogram of example lengths here.")] = None,
    frame_out: Annotated[Optional[Path], typer.Option("--frame", help="Write the per-example frame (.parquet or .csv).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Per-example statistics: turns, roles, characters, and with --model tokens and trained tokens."""
    import json

    from workbench import ingest
    from workbench import stats as st
    from workbench.console import err, out, progress
    from workbench.console.stats import render_summary

    if max_length is not None and max_length <= 0:
        raise UsageError(f"--max-length must be positive, got {max_length}")
    with progress("reading") as update:
        data = ingest.load(paths, format=format, mapping=parse_map(map), on_progress=update)
    tokenizer = None
    if model:
        from workbench.template import load_tokenizer

        tokenizer = load_tokenizer(model, template=template)
    with progress("tokenising", total=len(data.conversations)) as update:
        df = st.frame(data.conversations, tokenizer=tokenizer, max_length=max_length, on_progress=update)
    summary = st.summary(df, max_length=max_length)
    summary["rows_read"] = data.rows_read
    summary["rejected"] = len(data.rejects)
    col = "tokens" if tokenizer is not None else "chars"
    if plot:
        st.plot(df, plot, max_length=max_length)
    if frame_out:
        from workbench.export import atomic_path

        with atomic_path(frame_out) as tmp:
            (df.write_csv if str(frame_out).endswith(".csv") else df.write_parquet)(tmp)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    render_summary(out, summary, st.histogram(df[col], bins=12), col)
    if data.rejects:
        err.print(f"{len(data.rejects)} of {data.rows_read} rows rejected (see `workbench ingest` for the side file)")
    if plot:
        err.print(f"wrote {plot}")


def main() -> None:
    """Entry point: run the app; user mistakes print one clean error and exit 1 (2 for usage)."""
    from workbench.console import print_error

    try:
        app(standalone_mode=False, prog_name="workbench")
    except WorkbenchError as e:
        print_error(e)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors, as vendored by typer
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:
            print(f"error: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
