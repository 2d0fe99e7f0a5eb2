"""Faults around a sync: exit codes per outcome, killed runs marked abandoned, 429 Retry-After waited out
within a time budget, client timeouts against a slow ESP."""

from __future__ import annotations

import psycopg
import pytest
from activation_world import list_emails, make_client, sandbox, world  # noqa: F401

from dagster_project.activation.cli import (
    EXIT_ALREADY_RUNNING,
    EXIT_BAD_SETTINGS,
    EXIT_PARTIAL,
    EXIT_SUCCESS,
)
from dagster_project.activation.client import RetryableEspError, parse_retry_after
from dagster_project.activation.sync import run_sync
from dagster_project.cli import build_parser, main
from dagster_project.warehouse.connection import libpq_url

LIST = "sendwise"
DEST = "sandbox:sendwise"


@pytest.fixture
def sandbox_env(sandbox, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    monkeypatch.setenv("ESP_BASE_URL", sandbox.url)
    monkeypatch.setenv("ESP_LIST_ID", LIST)
    return sandbox


def test_each_sync_outcome_has_its_own_exit_code_and_no_traceback(
    world,  # noqa: F811
    sandbox_env,
    warehouse_url,
    monkeypatch,
    capsys,
):
    assert len({EXIT_SUCCESS, EXIT_PARTIAL, EXIT_BAD_SETTINGS, EXIT_ALREADY_RUNNING}) == 4
    with psycopg.connect(libpq_url(warehouse_url)) as other:
        other.execute("select pg_advisory_lock(hashtext(%s))", (DEST,))
        assert main(["sync", "--profiles-only"]) == EXIT_ALREADY_RUNNING
    captured = capsys.readouterr()
    assert "another sync to sandbox:sendwise is running" in captured.err
    assert "Traceback" not in captured.err + captured.out and sandbox_env.store.request_count == 0

    victim = sorted(world.contactable_emails())[0]
    sandbox_env.faults.update({"reject_emails": {victim: "spam trap"}})
    assert main(["sync", "--profiles-only"]) == EXIT_PARTIAL
    sandbox_env.faults.update({"reject_emails": {}})
    assert main(["sync", "--profiles-only"]) == EXIT_SUCCESS
    capsys.readouterr()

    monkeypatch.setenv("ESP_PROVIDER", "klaviyo")
    monkeypatch.delenv("ESP_API_KEY", raising=False)
    assert main(["sync"]) == EXIT_BAD_SETTINGS
    assert "ESP_API_KEY" in capsys.readouterr().err
    help_text = build_parser()._subparsers._group_actions[0].choices["sync"].format_help()
    assert "3 another sync to this destination is running" in " ".join(help_text.split())


def test_a_killed_syncs_running_row_is_marked_abandoned_when_the_lock_is_next_taken(world, sandbox):  # noqa: F811
    from dagster_project.activation.sync import ensure_tables

    ensure_tables(world.conn)
    world.conn.execute(
        "insert into activation.esp_sync_log (run_id, destination, list_id, dry_run, status, started_at) "
        "values ('killed', %s, %s, false, 'running', now() - interval '1 hour'), "
        "('other-list', 'sandbox:other', 'other', false, 'running', now())",
        (DEST, LIST),
    )
    world.conn.commit()
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    rows = dict(world.conn.execute("select run_id, status from activation.esp_sync_log").fetchall())
    assert rows == {"killed": "abandoned", "other-list": "running", result.run_id: "success"}
    duration = world.conn.execute(
        "select duration_seconds from activation.esp_sync_log where run_id = 'killed'"
    ).fetchone()[0]
    assert duration >= 3600


def test_429s_with_retry_after_do_not_use_up_the_tries(sandbox):  # noqa: F811
    sandbox.faults.update({"rate_limited_requests": 6, "retry_after_seconds": 0})
    sandbox.store.add_event("Opened Email", "a@example.com", "2026-06-01T10:00:00+00:00", {})
    client = make_client(sandbox, max_attempts=2)  # six 429s in a row: more than the tries
    assert list(client.metrics()) == ["Opened Email"]
    assert client.session.retry_count == 6


def test_429s_past_the_time_budget_fail_the_batch(sandbox):  # noqa: F811
    sandbox.faults.update({"rate_limited_requests": 1, "retry_after_seconds": 2})
    client = make_client(sandbox)
    client.session.retry_after_budget = 1.0  # the server asks for more than the budget: give up at once
    with pytest.raises(RetryableEspError, match="429"):
        client.metrics()
    assert client.session.request_count == 1


def test_retry_after_as_an_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=lambda: 1445412480.0) == 30.0
    assert parse_retry_after("12") == 12.0 and parse_retry_after("soon") is None


def test_timeouts_against_a_slow_esp_fail_the_batch_as_retryable_then_the_rerun_converges(world, sandbox):  # noqa: F811
    # the first four answers take 3 s against a 0.5 s timeout: both batches time out twice
    sandbox.faults.update({"slow_requests": 4, "slow_seconds": 3.0})
    client = make_client(sandbox, upsert_batch_size=200, max_attempts=2, timeout=0.5)
    result = run_sync(world.conn, client, DEST, LIST)
    expected = world.contactable_emails()
    assert (result.status, result.failed, result.added) == ("partial", len(expected), 0)
    reasons = world.conn.execute(
        "select distinct reason from activation.esp_sync_outcomes where run_id = %s", (result.run_id,)
    ).fetchall()
    assert reasons == [("POST /api/profile-bulk-import-jobs: timed out (ReadTimeout)",)]
    assert client.session.retry_count == 2  # one retry per batch
    # the slow ESP may still have carried the jobs out: the rerun upserts again, no duplicates
    rerun = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert rerun.added == len(expected) and rerun.failed == 0
    assert set(list_emails(sandbox, LIST)) == expected
    assert len(sandbox.store.profiles) == len(expected)
