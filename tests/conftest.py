"""Shared test fixtures: paths to ../shared/fixtures (skipped when absent) and a temp working dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("WORKBENCH_FIXTURES", REPO.parent / "shared" / "fixtures"))
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real-world fixtures folder; tests that need it skip when it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-world fixtures not found at {FIXTURES} (set WORKBENCH_FIXTURES)")
    return FIXTURES


@pytest.fixture(scope="session")
def tests_data() -> Path:
    return DATA
