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


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """``tiny_tokenizer(family, **opts)``: a tiny trained tokenizer from workbench.train.tiny, built once per session."""
    from workbench.train import tiny

    cache: dict[tuple, object] = {}

    def get(family: str = "chatml", **opts: object):
        key = (family, tuple(sorted(opts.items())))
        if key not in cache:
            cache[key] = tiny.build_tokenizer(family, **opts)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_model_dir(family, **opts)``: a folder with a tiny tokenizer + model (workbench.train.tiny.build), once per session."""
    from workbench.train import tiny

    root = tmp_path_factory.mktemp("tiny")

    def get(family: str = "chatml", **opts: object) -> Path:
        model = bool(opts.pop("model", True))
        name = family + "-" + tiny.options_hash(family, model, opts)
        return tiny.build(root / name, family, model=model, **opts)

    return get


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Inside the fresh-clone run of the README's test command (tests/test_readme.py), the slow tests are
    skipped: the run that started it runs them, and running them twice would double CI's longest part."""
    if os.environ.get("WORKBENCH_NESTED") != "1":
        return
    skip = pytest.mark.skip(reason="slow: run by the outer test run that started this fresh-clone run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
