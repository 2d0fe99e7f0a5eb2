"""A daily profile sync diffs only the customers whose inputs were rebuilt (or whose daily-rewritten
segment / send time moved, or who left), and leaves the ESP as a diff of everyone would."""

from __future__ import annotations

from activation_world import make_client, sandbox, world  # noqa: F401

from dagster_project.activation import sync_scope
from dagster_project.activation.sync import run_sync

LIST = "sendwise"
DEST = "sandbox:sendwise"


def _stamp(world) -> list[str]:  # noqa: F811
    """The build stamps dbt writes: on the profiles and on the features' table."""
    world.conn.execute(
        "alter table marts.dim_customers add column _built_at timestamptz not null default now(); "
        "create schema if not exists intermediate; "
        "create table intermediate.int_customers__features as "
        "select customer_key, now() as _built_at from marts.fct_customer_features"
    )
    world.conn.commit()
    rows = world.conn.execute(
        "select customer_key from marts.dim_customers where is_contactable order by customer_key"
    ).fetchall()
    return [row[0] for row in rows]


def test_a_daily_sync_diffs_the_changed_customers_only(world, sandbox, monkeypatch):  # noqa: F811
    contactable = _stamp(world)
    first = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert first.plan.candidates is None and first.added == len(contactable)  # no previous sync: everyone

    rebuilt, rebuilt_same, moved, left = contactable[:4]
    for statement, keys in (
        (
            "update marts.fct_customer_features set engagement_score = 0.123 where customer_key = %s",
            [rebuilt],
        ),
        (
            "update intermediate.int_customers__features set _built_at = now() "
            "where customer_key in (%s, %s)",
            [rebuilt, rebuilt_same],
        ),
        (
            "update ml.customer_segments set segment_id = 9, segment_name = 'Moved' where customer_key = %s",
            [moved],
        ),
        ("delete from marts.dim_customers where customer_key = %s", [left]),
    ):
        world.conn.execute(statement, keys)
    world.conn.commit()
    day = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert day.plan.candidates == 4  # rebuilt twice, the moved segment and the one who left
    assert sorted(r.customer_key for r in day.plan.to_update) == [rebuilt, moved]
    assert [r.customer_key for r in day.plan.to_remove] == [left]
    assert day.plan.unchanged == len(contactable) - 3
    profiles = {p["external_id"]: p["properties"] for p in sandbox.store.profiles.values()}
    assert profiles[rebuilt]["sendwise_engagement_score"] == 0.123
    assert profiles[moved]["sendwise_segment"] == "Moved"

    # what a diff of everyone would send now: nothing
    monkeypatch.setattr(sync_scope, "previous_inputs", lambda *args: None)
    everyone = run_sync(world.conn, None, DEST, LIST, dry_run=True)
    assert everyone.plan.candidates is None and everyone.plan.planned == 0
    monkeypatch.undo()

    client = make_client(sandbox)
    again = run_sync(world.conn, client, DEST, LIST)
    assert (again.plan.candidates, again.plan.planned, client.request_count) == (0, 0, 0)


def test_a_partial_sync_or_changed_fields_diff_everyone(world, sandbox):  # noqa: F811
    _stamp(world)
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.candidates == 0
    world.conn.execute("update activation.esp_sync_log set status = 'partial'")
    world.conn.commit()
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.candidates is None
    world.conn.execute("update activation.esp_sync_log set fields_version = 'older'")
    world.conn.commit()
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.candidates is None
