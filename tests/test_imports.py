"""The core never loads the TUI, rich or torch at import time; `workbench --help` stays fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
# every core module: all of workbench/ but the CLI, its terminal layer and the TUI
CORE = sorted(
    f"workbench.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "cli")
)


def test_core_modules_do_not_import_textual_rich_or_torch() -> None:
    assert len(CORE) > 20
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}:\n"
        "    importlib.import_module(m)\n"
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
