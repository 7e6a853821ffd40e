"""Fixtures for the app's tests: the small dataset (by a relative path, so snapshots hold no tmp dirs) and a tiny tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SIZE = (140, 40)


@pytest.fixture
def in_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run beside a copy of tests/tui/data so the app shows `small.jsonl`, the same on every machine,
    and the decisions sidecar it writes beside the data lands in a temporary folder."""
    data = tmp_path / "data"
    shutil.copytree(HERE / "data", data)
    monkeypatch.chdir(data)
    return data


@pytest.fixture(scope="session")
def tiny_dir(tiny_model_dir) -> Path:  # type: ignore[no-untyped-def]
    return tiny_model_dir("chatml", model=False)


def make_app(path: str = "small.jsonl", **kwargs):  # type: ignore[no-untyped-def]
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.session import options

    return WorkbenchApp(options([path], **kwargs))


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until every background pass (and the filters they trigger) has finished and been drawn."""
    from textual.worker import WorkerCancelled

    for _ in range(4):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # a search replaced by a newer one: cancelled on purpose
            pass
        await pilot.pause()
    await pilot.pause()


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio, through anyio's pytest plugin (installed with httpx/anyio)."""
    return "asyncio"
