"""Upserted raw tables: the daily checks look at the rows loaded since the last passing validation, the
weekly full check at every row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from quality_world import execute, failures

from dagster_project.quality import gx_runner
from dagster_project.quality.suites import SuiteDefinitionError, load_suite, load_suites
from dagster_project.settings import get_settings

SUITE = "raw_shop_orders"


def _validate(world: str, full: bool = False):
    (spec,) = [s for s in load_suites() if s.name == SUITE]
    return gx_runner.run_suite(spec, world, f"test-{uuid.uuid4().hex[:8]}", get_settings(), False, full)


def test_daily_checks_see_a_bad_new_row_and_the_full_check_a_bad_old_row(world: str) -> None:
    execute(world, "update raw.shop_orders set _loaded_at = now() - interval '2 days'")  # yesterday's load
    first = _validate(world)
    assert failures({SUITE: first}) == {}
    assert "every row" in first.outcome("status_allowed").note  # nothing validated before: all rows

    # an old row goes bad behind the loader's back (its load time stays), and a bad row is upserted
    execute(world, "update raw.shop_orders set customer_id = null where order_id = 7")
    execute(
        world,
        "insert into raw.shop_orders (order_id, customer_id, status, order_total, currency, ordered_at, "
        "created_at, updated_at, _batch_id) values (901, 1, 'lost', 10, 'EUR', timestamptz "
        "'2025-03-01 11:00+00', timestamptz '2025-03-01 11:00+00', timestamptz '2025-03-01 11:00+00', 'b2')",
    )
    daily = _validate(world)
    assert failures({SUITE: daily}) == {SUITE: {"status_allowed"}}
    lost = daily.outcome("status_allowed")
    assert lost.unexpected_count == 1 and {row.get("order_id") for row in lost.sample} == {901}
    assert "rows loaded since" in lost.note
    assert daily.row_count == 901  # the row count still covers the whole table

    # the failed run did not move the watermark: the next daily run still reports the new row
    assert failures({SUITE: _validate(world)}) == {SUITE: {"status_allowed"}}

    full = _validate(world, full=True)
    assert failures({SUITE: full}) == {SUITE: {"status_allowed", "customer_id_not_null"}}
    missing = full.outcome("customer_id_not_null")
    assert missing.unexpected_count == 1 and {row.get("order_id") for row in missing.sample} == {7}
    assert "every row (full check)" in missing.note


@pytest.mark.parametrize(
    ("old_rows", "since_ago"),
    [
        (True, (timedelta(days=2), timedelta(days=2, minutes=5))),  # the newest stamp seen is older
        (False, (timedelta(minutes=10), timedelta(minutes=13))),  # the load's start, less a minute
    ],
    ids=["older-stamps", "newer-stamps"],
)
def test_a_load_that_overlapped_the_last_validation_is_checked(
    world: str, old_rows: bool, since_ago: tuple[timedelta, timedelta]
) -> None:
    """Rows of a load that started before the last passing validation and committed after it carry
    the earlier time: the watermark is the older of the newest stamp that validation saw and that
    load's start (ops.load_log)."""
    if old_rows:
        execute(world, "update raw.shop_orders set _loaded_at = now() - interval '2 days'")
    assert failures({SUITE: _validate(world)}) == {}
    execute(
        world,
        "insert into raw.shop_orders (order_id, customer_id, status, order_total, currency, ordered_at, "
        "created_at, updated_at, _batch_id, _loaded_at) values (902, 1, 'lost', 10, 'EUR', now(), now(), "
        "now(), 'b3', now() - interval '10 minutes'); "
        "insert into ops.load_log (batch_id, stream, received, loaded, quarantined, written, status, "
        "started_at, finished_at) values ('b3', 'shop_orders', 1, 1, 0, 1, 'success', "
        "now() - interval '10 minutes', now())",
    )
    lost = _validate(world).outcome("status_allowed")
    assert not lost.success and {row.get("order_id") for row in lost.sample} == {902}
    since = datetime.fromisoformat(lost.note.split("since ")[1].split(" ")[0])
    assert since_ago[0] <= datetime.now(UTC) - since < since_ago[1]


def test_the_weekly_full_check_is_scheduled() -> None:
    from dagster_project.definitions import defs

    schedule = defs.resolve_schedule_def("weekly_full_quality_checks")
    assert schedule.job_name == "quality_full_checks" and schedule.cron_schedule == "30 4 * * 0"


HAND_SUITE = """
suite: hand_events
asset: raw/hand_events
table: raw.hand_events
key: [event_id]
new_rows: {column: _loaded_at}
expectations:
  - check: kind_allowed
    expect: column_values_to_be_in_set
    column: kind
    value_set: [open, click]
  - check: event_id_unique
    expect: column_values_to_be_unique
    column: event_id
    scope: table
  - check: event_id_unique_among_new_rows
    expect: column_values_to_be_unique
    column: event_id
"""


def test_new_rows_checks_see_new_rows_and_scope_table_checks_every_row(world: str, tmp_path) -> None:
    path = tmp_path / "hand_events.yml"
    path.write_text(HAND_SUITE)
    spec = load_suite(path)

    def validate(full: bool = False):
        return gx_runner.run_suite(spec, world, f"test-{uuid.uuid4().hex[:8]}", get_settings(), False, full)

    execute(
        world,
        "create table raw.hand_events (event_id text, kind text, "
        "_loaded_at timestamptz not null default now()); "
        "insert into raw.hand_events select 'e' || g, 'open', now() - interval '2 days' "
        "from generate_series(1, 5) g",
    )
    assert failures({"hand_events": validate()}) == {}

    # an old row goes bad without being reloaded; a bad row and a row repeating an old id are loaded
    execute(world, "update raw.hand_events set kind = 'bogus' where event_id = 'e2'")
    execute(world, "insert into raw.hand_events (event_id, kind) values ('e6', 'bogus'), ('e1', 'click')")
    daily = validate()
    assert failures({"hand_events": daily}) == {"hand_events": {"kind_allowed", "event_id_unique"}}
    bogus = daily.outcome("kind_allowed")
    assert bogus.unexpected_count == 1 and {row.get("event_id") for row in bogus.sample} == {"e6"}
    assert "rows built since" in bogus.note  # no stream: after the newest stamp the last pass saw
    assert daily.outcome("event_id_unique").unexpected_count == 2  # e1 twice, across old and new rows
    assert daily.outcome("event_id_unique").note == "every row (scope: table)"
    assert daily.outcome("event_id_unique_among_new_rows").success  # e1 once among the new rows

    full = validate(full=True)
    assert full.outcome("kind_allowed").unexpected_count == 2  # the old bad row too
    assert {row.get("event_id") for row in full.outcome("kind_allowed").sample} == {"e2", "e6"}
    assert not full.outcome("event_id_unique_among_new_rows").success


def test_scope_must_be_rows_or_table(tmp_path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(HAND_SUITE.replace("scope: table", "scope: everything"))
    with pytest.raises(SuiteDefinitionError, match="bad.yml.*event_id_unique.*scope must be one of"):
        load_suite(path)


def _validate_suite(world: str, name: str, full: bool = False):
    (spec,) = [s for s in load_suites() if s.name == name]
    return gx_runner.run_suite(spec, world, f"test-{uuid.uuid4().hex[:8]}", get_settings(), False, full)


def test_built_marts_check_the_rows_built_since_the_last_passing_validation(world: str) -> None:
    """dim_customers by its _built_at, the fct_customer_features view by its table's _built_at: a bad
    profile rebuilt today fails today's check, a bad old row is not read again until the weekly check."""
    for suite in ("dim_customers", "fct_customer_features"):
        assert failures({suite: _validate_suite(world, suite)}) == {}
    contactable_unsubscribed = "set is_contactable = true, subscription_status = 'unsubscribed'"
    execute(world, f"update marts.dim_customers {contactable_unsubscribed} where customer_key = 'ck-5'")
    execute(
        world,
        f"update marts.dim_customers {contactable_unsubscribed}, _built_at = now() "
        "where customer_key = 'ck-10'; update marts.fct_customer_features set email_unique_opens_30d = 99 "
        "where customer_key in ('ck-3', 'ck-4'); "
        "update intermediate.int_customers__features set _built_at = now() where customer_key = 'ck-4'",
    )
    profiles = _validate_suite(world, "dim_customers").outcome("contactable_only_with_valid_email")
    assert not profiles.success and [row["customer_key"] for row in profiles.sample] == ["ck-10"]
    assert "rows built since" in profiles.note
    features = _validate_suite(world, "fct_customer_features")
    opens = features.outcome("opens_not_above_sends_30d")
    assert opens.unexpected_count == 1 and [row["customer_key"] for row in opens.sample] == ["ck-4"]
    assert features.outcome("one_row_per_profile").note == "every row (scope: table)"
    assert features.row_count == 400  # the row count covers the whole table

    full = _validate_suite(world, "dim_customers", full=True).outcome("contactable_only_with_valid_email")
    assert {row["customer_key"] for row in full.sample} == {"ck-5", "ck-10"}
    opens = _validate_suite(world, "fct_customer_features", full=True).outcome("opens_not_above_sends_30d")
    assert opens.unexpected_count == 2


def test_ml_value_rows_are_checked_when_scored(world: str) -> None:
    assert failures({"ml_customer_value": _validate_suite(world, "ml_customer_value")}) == {}
    execute(world, "update ml.customer_value set p_alive = 2 where customer_key = 'ck-1'")  # not rescored
    assert failures({"ml_customer_value": _validate_suite(world, "ml_customer_value")}) == {}
    execute(world, "update ml.customer_value set p_alive = 3, scored_at = now() where customer_key = 'ck-2'")
    daily = _validate_suite(world, "ml_customer_value")
    assert failures({"ml_customer_value": daily}) == {"ml_customer_value": {"p_alive_in_unit_range"}}
    assert [row["customer_key"] for row in daily.outcome("p_alive_in_unit_range").sample] == ["ck-2"]
