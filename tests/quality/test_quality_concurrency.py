"""Runs that overlap never fail each other inside Great Expectations.

Dagster runs every step in its own process, and `make dev` ran several runs at once on one
SENDWISE_HOME: with suites in a shared file store, one process re-saving a suite made the other's
checkpoint stale (`ExpectationSuite ... has changed since it has last been saved`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

from quality_world import failures
from test_quality_checks import _evaluations, _run

from dagster_project.quality import gx_runner
from dagster_project.quality.suites import load_suites
from dagster_project.settings import PROJECT_ROOT, get_settings

_OTHER_RUN = """
import sys
from dagster_project.quality import gx_runner
from dagster_project.quality.suites import load_suites
from dagster_project.settings import get_settings
for spec in load_suites():
    if spec.name in ("dim_customers", "raw_shop_orders"):
        outcome = gx_runner.run_suite(spec, sys.argv[1], "other-run", get_settings(), build_docs=False)
        assert outcome.success, outcome
print("ok")
"""


def _validate(world: str, names: tuple[str, ...]) -> dict:
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    return {
        s.name: gx_runner.run_suite(s, world, run_id, get_settings(), build_docs=False)
        for s in load_suites()
        if s.name in names
    }


def test_another_process_validating_the_same_suites_does_not_stale_this_one(world: str) -> None:
    names = ("dim_customers", "raw_shop_orders")
    assert failures(_validate(world, names)) == {}  # this process has built its suites and checkpoints
    other = subprocess.run(
        [sys.executable, "-c", _OTHER_RUN, world],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    # With a shared suite store this raised CheckpointRelatedResourcesFreshnessError.
    assert failures(_validate(world, names)) == {}


def test_two_runs_at_once_both_succeed(world: str) -> None:
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = _run(world)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for result in results.values():
        assert result.success
        evaluations = _evaluations(result)
        assert ("dim_customers", "valid_email_format") in evaluations
        assert all(e.passed for e in evaluations.values())
