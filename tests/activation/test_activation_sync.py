"""Profile sync against the local ESP sandbox: diffing, consent, faults, crash recovery, dry run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest
from activation_world import list_emails, make_client, sandbox, world  # noqa: F401

from dagster_project.activation.klaviyo import KlaviyoClient
from dagster_project.activation.sync import run_sync

LIST = "sendwise"
DEST = "sandbox:sendwise"


def assert_exact_state(world, sandbox) -> None:  # noqa: F811
    """The ESP holds exactly the contactable customers, once each, all in Sendwise's list."""
    expected = world.contactable_emails()
    emails = [p["email"] for p in sandbox.store.profiles.values()]
    members = list_emails(sandbox, LIST)
    assert len(members) == len(set(members)), "a profile is in the list twice"
    assert set(members) == expected
    assert not [e for e, n in Counter(emails).items() if n > 1], "duplicate profiles in the ESP"


def sync_log(world, run_id):  # noqa: F811
    return world.conn.execute(
        "select status, planned, added, updated, unchanged, removed, failed, rejected, requests "
        "from activation.esp_sync_log where run_id = %s",
        (run_id,),
    ).fetchone()


def test_first_sync_pushes_contactable_profiles_with_ml_properties(world, sandbox):  # noqa: F811
    client = make_client(sandbox)
    result = run_sync(world.conn, client, DEST, LIST)
    expected = world.contactable_emails()
    assert result.added == len(expected) and result.updated == 0 and result.failed == 0
    assert_exact_state(world, sandbox)
    # never pushed anyone who is not contactable, not even as a profile outside the list
    pushed = {p["external_id"] for p in sandbox.store.profiles.values()}
    assert not pushed & world.not_contactable
    key, segment, hour = world.conn.execute(
        "select s.customer_key, s.segment_name, t.best_hour_of_week from ml.customer_segments s "
        "join ml.send_time_predictions t using (customer_key) "
        "join marts.dim_customers c using (customer_key) "
        "where c.is_contactable order by 1 limit 1"
    ).fetchone()
    profile = next(p for p in sandbox.store.profiles.values() if p["external_id"] == key)
    assert profile["properties"]["sendwise_segment"] == segment
    assert profile["properties"]["sendwise_best_send_hour"] == hour
    # batches of 50 -> one import job each
    jobs = [r for r in sandbox.store.requests if r[:2] == ("POST", "/api/profile-bulk-import-jobs")]
    assert len(jobs) == -(-len(expected) // 50)
    status, planned, added, *_ = sync_log(world, result.run_id)
    assert (status, planned, added) == ("success", len(expected), len(expected))


def test_rerun_without_changes_sends_zero_requests(world, sandbox):  # noqa: F811
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    before = sandbox.store.request_count
    client = make_client(sandbox)
    result = run_sync(world.conn, client, DEST, LIST)
    assert client.request_count == 0 and sandbox.store.request_count == before
    assert result.plan.planned == 0
    status, planned, added, updated, unchanged, *_rest, requests = sync_log(world, result.run_id)
    assert (planned, added, updated, requests) == (0, 0, 0, 0)
    assert unchanged == len(world.contactable_emails())


def test_changed_subset_is_the_only_thing_pushed(world, sandbox):  # noqa: F811
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    changed = [
        r[0]
        for r in world.conn.execute(
            "select customer_key from marts.dim_customers where is_contactable order by customer_key limit 7"
        )
    ]
    world.conn.execute(
        "update marts.fct_customer_features set engagement_score = 0.999 where customer_key = any(%s)",
        (changed,),
    )
    world.conn.execute(
        "update ml.customer_segments set segment_name = 'rising stars' where customer_key = %s", (changed[0],)
    )
    world.conn.commit()
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert (result.added, result.updated, result.removed) == (0, 7, 0)
    updated = {p["external_id"]: p for p in sandbox.store.profiles.values() if p["external_id"] in changed}
    assert all(p["properties"]["sendwise_engagement_score"] == 0.999 for p in updated.values())
    assert updated[changed[0]]["properties"]["sendwise_segment"] == "rising stars"


def test_people_who_become_non_contactable_are_removed_from_the_list(world, sandbox):  # noqa: F811
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    leaving = [
        r[0]
        for r in world.conn.execute(
            "select customer_key from marts.dim_customers where is_contactable "
            "order by customer_key desc limit 25"
        )
    ]
    world.set_status(leaving[:20], "unsubscribed")
    world.set_status(leaving[20:], "complained")
    client = make_client(sandbox, removal_batch_size=10)
    result = run_sync(world.conn, client, DEST, LIST)
    assert result.removed == 25 and result.added == 0 and result.updated == 0
    assert_exact_state(world, sandbox)
    deletes = [r for r in sandbox.store.requests if r[0] == "DELETE"]
    assert len(deletes) == 3  # 25 removals in batches of 10
    left = world.conn.execute(
        "select count(*) from activation.esp_sync_state where customer_key = any(%s)", (leaving,)
    ).fetchone()[0]
    assert left == 0
    # a second run has nothing left to do
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.planned == 0


def test_rate_limit_429_honours_retry_after(world, sandbox):  # noqa: F811
    sandbox.faults.update({"rate_limited_requests": 2, "retry_after_seconds": 1})
    client = make_client(sandbox)
    started = time.monotonic()
    result = run_sync(world.conn, client, DEST, LIST)
    elapsed = time.monotonic() - started
    assert result.failed == 0 and result.added == len(world.contactable_emails())
    assert [r[2] for r in sandbox.store.requests[:2]] == [429, 429]
    assert client.session.retry_count == 2
    assert elapsed >= 2.0  # waited Retry-After twice, not the 10 ms backoff
    assert_exact_state(world, sandbox)


def test_server_errors_and_timeouts_are_retried(world, sandbox):  # noqa: F811
    sandbox.faults.update({"server_error_requests": 2, "slow_requests": 1, "slow_seconds": 3.0})
    client = make_client(sandbox, timeout=1.5)
    result = run_sync(world.conn, client, DEST, LIST)
    assert [r[2] for r in sandbox.store.requests[:2]] == [500, 500]
    # two 500s and one timeout retried (a loaded machine may add a slow answer of its own)
    assert result.failed == 0 and client.session.retry_count >= 3
    assert_exact_state(world, sandbox)


def test_a_batch_that_keeps_failing_does_not_block_the_rest(world, sandbox):  # noqa: F811
    poisoned = sorted(world.contactable_emails())[60]
    sandbox.faults.update({"fail_jobs_with_emails": [poisoned]})
    result = run_sync(world.conn, make_client(sandbox, max_attempts=3), DEST, LIST)
    expected = world.contactable_emails()
    assert result.failed == 50 and result.added == len(expected) - 50
    assert result.status == "partial"
    assert poisoned not in set(list_emails(sandbox, LIST))
    failed_rows = world.conn.execute(
        "select count(*), min(reason) from activation.esp_sync_outcomes "
        "where run_id = %s and status = 'failed'",
        (result.run_id,),
    ).fetchone()
    assert failed_rows[0] == 50 and "500" in failed_rows[1]
    sandbox.faults.update({"fail_jobs_with_emails": []})
    retry = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert retry.added == 50 and retry.failed == 0
    assert_exact_state(world, sandbox)


def test_rejected_records_are_logged_with_the_esp_reason_and_retried(world, sandbox):  # noqa: F811
    victims = sorted(world.contactable_emails())[:3]
    sandbox.faults.update({"reject_emails": {e: "email domain is on a blocklist" for e in victims}})
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert result.rejected == 3
    rows = world.conn.execute(
        "select email, reason from activation.esp_sync_outcomes where run_id = %s and status = 'rejected'",
        (result.run_id,),
    ).fetchall()
    assert sorted(r[0] for r in rows) == [f"{e[0]}***@{e.split('@')[1]}" for e in victims]  # masked
    assert all("blocklist" in r[1] for r in rows)
    sandbox.faults.update({"reject_emails": {}})
    retry = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert (retry.added, retry.updated, retry.rejected) == (3, 0, 0)
    assert_exact_state(world, sandbox)


class Crash(Exception):
    pass


def test_crash_between_batches_then_rerun_converges(world, sandbox):  # noqa: F811
    def crash_after_second_batch(batch_number: int) -> None:
        if batch_number == 2:
            raise Crash("killed")

    with pytest.raises(Crash):
        run_sync(world.conn, make_client(sandbox), DEST, LIST, after_batch=crash_after_second_batch)
    confirmed = world.conn.execute("select count(*) from activation.esp_sync_state").fetchone()[0]
    assert confirmed == 100
    status = world.conn.execute(
        "select status from activation.esp_sync_log order by started_at limit 1"
    ).fetchone()[0]
    assert status == "crashed"
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert result.added == len(world.contactable_emails()) - 100
    assert_exact_state(world, sandbox)


class CrashingAfterEspConfirmed(KlaviyoClient):
    """Dies after the ESP accepted the third batch but before Sendwise recorded it."""

    calls = 0

    def upsert_profiles(self, records, list_id):
        outcomes = super().upsert_profiles(records, list_id)
        type(self).calls += 1
        if type(self).calls == 3:
            raise Crash("killed after the ESP confirmed, before the state was written")
        return outcomes


def test_crash_after_esp_confirmed_but_before_state_write_leaves_no_duplicates(world, sandbox):  # noqa: F811
    with pytest.raises(Crash):
        run_sync(world.conn, make_client(sandbox, client_class=CrashingAfterEspConfirmed), DEST, LIST)
    assert len(sandbox.store.profiles) == 150  # the ESP has three batches, Sendwise recorded two
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert result.added == len(world.contactable_emails()) - 100  # the third batch is sent again
    assert_exact_state(world, sandbox)
    assert len(sandbox.store.profiles) == len(world.contactable_emails())


def test_dry_run_sends_nothing_and_reports_the_plan(world, sandbox):  # noqa: F811
    client = make_client(sandbox)
    result = run_sync(world.conn, client, DEST, LIST, dry_run=True)
    assert client.request_count == 0 and sandbox.store.request_count == 0
    assert len(result.plan.to_add) == len(world.contactable_emails())
    assert world.conn.execute("select count(*) from activation.esp_sync_state").fetchone()[0] == 0
    status, planned, added, *_ = sync_log(world, result.run_id)
    assert (status, planned, added) == ("dry_run", len(world.contactable_emails()), 0)
    # after a real sync, a dry run sees the unsubscribes it would remove
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    key = sorted(world.contactable_emails())[0].replace("person", "cust-").split("@")[0]
    world.set_status([f"cust-{int(key.split('-')[1]):06d}"], "unsubscribed")
    before = sandbox.store.request_count
    preview = run_sync(world.conn, make_client(sandbox), DEST, LIST, dry_run=True)
    assert len(preview.plan.to_remove) == 1 and sandbox.store.request_count == before


def test_sync_process_killed_mid_run_then_rerun_ends_in_the_exact_state(world, sandbox, monkeypatch):  # noqa: F811
    sandbox.faults.update({"slow_requests": 1_000_000, "slow_seconds": 0.1})
    env = {**os.environ, "ESP_PROVIDER": "sandbox", "ESP_BASE_URL": sandbox.url, "ESP_LIST_ID": LIST}
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "sync", "--profiles-only", "--batch-size", "20"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.store.jobs) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    assert process.wait() == -9
    confirmed = world.conn.execute("select count(*) from activation.esp_sync_state").fetchone()[0]
    assert 0 < len(sandbox.store.profiles) < len(world.contactable_emails())
    assert confirmed <= len(sandbox.store.profiles)
    unfinished = world.conn.execute("select status from activation.esp_sync_log").fetchall()
    assert unfinished == [("running",)]  # the killed run never got to write its end

    sandbox.faults.update({"slow_requests": 0})
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert result.added == len(world.contactable_emails()) - confirmed
    assert_exact_state(world, sandbox)
    statuses = world.conn.execute("select status from activation.esp_sync_log order by started_at")
    assert statuses.fetchall() == [("abandoned",), ("success",)]  # found dead when the lock was taken


def test_sync_before_the_first_ml_run_pushes_what_exists(world, sandbox):  # noqa: F811
    world.conn.execute("drop table ml.customer_segments; drop table ml.send_time_predictions")
    world.conn.commit()
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert result.added == len(world.contactable_emails())
    profile = next(iter(sandbox.store.profiles.values()))
    assert profile["properties"]["sendwise_segment"] is None
    assert profile["properties"]["sendwise_engagement_score"] is not None
    assert_exact_state(world, sandbox)


def test_full_resync_restores_an_esp_that_lost_its_data(world, sandbox):  # noqa: F811
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    sandbox.store.reset()  # the ESP side forgot everything; Sendwise's state still says "synced"
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.planned == 0
    result = run_sync(world.conn, make_client(sandbox), DEST, LIST, full_resync=True)
    assert result.updated == len(world.contactable_emails()) and result.added == 0
    assert_exact_state(world, sandbox)


def test_two_syncs_to_one_destination_never_interleave(world, sandbox, warehouse_url):  # noqa: F811
    import psycopg

    from dagster_project.activation.sync import SyncAlreadyRunning
    from dagster_project.warehouse.connection import libpq_url

    with psycopg.connect(libpq_url(warehouse_url)) as other:
        other.execute("select pg_advisory_lock(hashtext(%s))", (DEST,))
        with pytest.raises(SyncAlreadyRunning, match="another sync to sandbox:sendwise"):
            run_sync(world.conn, make_client(sandbox), DEST, LIST)
        assert run_sync(world.conn, None, DEST, LIST, dry_run=True).status == "dry_run"  # reads only
    assert sandbox.store.request_count == 0
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).status == "success"  # lock released


def test_import_jobs_are_polled_until_complete(world, tmp_path):  # noqa: F811
    from dagster_project.activation.sandbox import Sandbox
    from dagster_project.settings import get_settings

    with Sandbox(tmp_path / "slow_jobs", get_settings().esp_specs_dir, job_polls_until_complete=3) as slow:
        result = run_sync(world.conn, make_client(slow, upsert_batch_size=100), DEST, LIST)
        jobs = [r for r in slow.store.requests if r[:2] == ("POST", "/api/profile-bulk-import-jobs")]
        polls = [r for r in slow.store.requests if r[0] == "GET" and "/api/profile-bulk-import-jobs/" in r[1]]
        assert len(polls) == 3 * len(jobs) and result.added == len(world.contactable_emails())
        assert all(job["status"] == "complete" for job in slow.store.jobs.values())


def test_reconcile_repairs_a_list_edited_behind_sendwises_back(world, sandbox):  # noqa: F811
    from dagster_project.activation.sync import reconcile

    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    members = sandbox.store.lists[LIST]
    stranger = sandbox.store.upsert_profile({"email": "stranger@example.com"})
    blocked_key = sorted(world.not_contactable)[0]
    blocked = sandbox.store.upsert_profile({"email": "blocked@example.com", "external_id": blocked_key})
    members.update({stranger: None, blocked: None})  # added by hand in the ESP
    dropped = next(iter(members))
    members.pop(dropped)  # removed by hand in the ESP
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.planned == 0  # the diff cannot see it
    result = reconcile(world.conn, make_client(sandbox), DEST, LIST)
    assert (result.extra_removed, result.missing_forgotten) == (2, 1)
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).added == 1
    assert_exact_state(world, sandbox)
