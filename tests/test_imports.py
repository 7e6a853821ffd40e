"""The core never loads the TUI, rich or torch at import time; `workbench --help` stays fast."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "workbench.records",
    "workbench.errors",
    "workbench.export",
    "workbench.stats",
    "workbench.ingest",
    "workbench.formats",
    "workbench.lint",
    "workbench.template",
    "workbench.mask",
    "workbench.checks",
    "workbench.dedup",
    "workbench.tiny",
]


def test_core_modules_do_not_import_textual_rich_or_torch() -> None:
    code = (
        "import importlib, importlib.util, sys\n"
        f"for m in {CORE!r}:\n"
        "    if importlib.util.find_spec(m) is not None:\n"
        "        importlib.import_module(m)\n"
        "print(','.join(sorted(x for x in ('textual', 'rich', 'torch', 'transformers', 'datasets') if x in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_module_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, workbench.cli\n"
        "print(','.join(sorted(x for x in ('textual', 'torch', 'transformers', 'datasets', 'polars') if x in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
