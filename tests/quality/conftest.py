"""Fixtures of the quality tests: a clean world in a fresh warehouse, one GX home per test module."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from quality_world import build_clean_world


@pytest.fixture(scope="module")
def quality_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SENDWISE_HOME shared by a module's tests, so they share one GX context (and its Data Docs)."""
    return tmp_path_factory.mktemp("quality-home")


@pytest.fixture
def world(warehouse_url: str, quality_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh warehouse holding the clean quality world; yields its URL."""
    from dagster_project.quality import gx_runner

    monkeypatch.setenv("SENDWISE_HOME", str(quality_home))
    for name in (
        "SENDWISE_FRESHNESS_REFERENCE",
        "SENDWISE_QUALITY_MAX_SHRINK",
        "SENDWISE_QUALITY_MAX_QUARANTINE_SHARE",
    ):
        monkeypatch.delenv(name, raising=False)
    build_clean_world(warehouse_url)
    yield warehouse_url
    gx_runner.close_validators()


@pytest.fixture
def validate_all(world: str) -> Callable[[], dict]:
    """Runs every suite once (as one pipeline run) and returns {suite: SuiteOutcome}.

    Data Docs (slow to render) are built only when asked for.
    """
    from dagster_project.quality import gx_runner
    from dagster_project.quality.suites import load_suites
    from dagster_project.settings import get_settings

    def run(build_docs: bool = False) -> dict:
        run_id = f"test-{uuid.uuid4().hex[:8]}"
        return {
            s.name: gx_runner.run_suite(s, world, run_id, get_settings(), build_docs) for s in load_suites()
        }

    return run
