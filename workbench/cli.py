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


# --- commands -------------------------------------------------------------------------------
# Each command's body lives here; rendering helpers live in workbench/console/<command>.py.


def main() -> None:
    """Entry point: run the app; user mistakes print one clean error and exit 1 (2 for usage)."""
    import click

    from workbench.console import print_error

    try:
        app(standalone_mode=False)
    except WorkbenchError as e:
        print_error(e)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
