"""A new day re-sends only the profiles whose data changed, not every profile whose scores drifted with
the clock (the value models see each customer a day older)."""

from __future__ import annotations

from activation_world import make_client, sandbox, world  # noqa: F401

from dagster_project.activation.sync import run_sync

LIST = "sendwise"
DEST = "sandbox:sendwise"


def _add_customer_values(world) -> list[str]:  # noqa: F811
    world.conn.execute(
        "create table ml.customer_value (customer_key text primary key, historic_clv float8, p_alive float8, "
        "predicted_clv float8, churn_risk float8, churn_risk_band text, expected_next_order_at timestamptz, "
        "avg_days_between_orders float8, purchase_propensity_30d float8, top_categories text)"
    )
    world.conn.execute(
        "insert into ml.customer_value select customer_key, 100, 0.8, 300, 0.3, 'Low', "
        "timestamptz '2026-07-20 00:00+00', 30, 0.4, 'books' from marts.dim_customers"
    )
    world.conn.commit()
    keys = world.conn.execute(
        "select customer_key from marts.dim_customers where is_contactable order by customer_key"
    ).fetchall()
    return [k[0] for k in keys]


def _pass_a_day(world) -> None:  # noqa: F811
    """Every customer's scores move as a day of age moves them: a little, all at once."""
    world.conn.execute(
        "update ml.customer_value set p_alive = p_alive - 0.01, churn_risk = churn_risk + 0.01, "
        "purchase_propensity_30d = purchase_propensity_30d - 0.01, predicted_clv = predicted_clv * 0.99, "
        "expected_next_order_at = expected_next_order_at + interval '1 day'"
    )
    world.conn.commit()


def test_a_new_day_sends_only_the_touched_profiles(world, sandbox):  # noqa: F811
    contactable = _add_customer_values(world)
    first = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert first.added == len(contactable)

    _pass_a_day(world)
    touched = contactable[:3]
    world.conn.execute(
        "update marts.fct_customer_features set engagement_score = 0.123 where customer_key = %s",
        (touched[0],),
    )
    world.conn.execute("update ml.customer_value set p_alive = 0.2 where customer_key = %s", (touched[1],))
    world.conn.execute(
        "update ml.customer_value set expected_next_order_at = timestamptz '2026-09-01 00:00+00' "
        "where customer_key = %s",
        (touched[2],),
    )
    world.conn.commit()
    client = make_client(sandbox)
    day = run_sync(world.conn, client, DEST, LIST)
    assert (day.added, day.updated, day.removed) == (0, 3, 0)
    assert sorted(r.customer_key for r in day.plan.to_update) == touched
    assert day.plan.unchanged == len(contactable) - 3
    profiles = {p["external_id"]: p["properties"] for p in sandbox.store.profiles.values()}
    assert profiles[touched[1]]["sendwise_p_alive"] == 0.2
    assert profiles[touched[2]]["sendwise_expected_next_order_date"] == "2026-09-01"
    # an untouched profile still carries the value pushed first
    assert profiles[contactable[5]]["sendwise_p_alive"] == 0.8

    # no change at all: nothing is sent
    client = make_client(sandbox)
    again = run_sync(world.conn, client, DEST, LIST)
    assert (again.plan.planned, client.request_count) == (0, 0)


def test_drift_adds_up_until_the_pushed_value_is_past_its_tolerance(world, sandbox):  # noqa: F811
    contactable = _add_customer_values(world)
    run_sync(world.conn, make_client(sandbox), DEST, LIST)
    for _ in range(5):  # p_alive 0.80 -> 0.75: still within 0.05 of what the ESP holds
        _pass_a_day(world)
        assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.planned == 0
    _pass_a_day(world)  # 0.74 (and the expected order date 6 days later, relative CLV -6%)
    sixth = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert sixth.updated == len(contactable)
    profiles = {p["external_id"]: p["properties"] for p in sandbox.store.profiles.values()}
    assert profiles[contactable[0]]["sendwise_p_alive"] == 0.74
    assert profiles[contactable[0]]["sendwise_churn_risk"] == 0.36
    # measured from the value now pushed: the next day is again within tolerance
    _pass_a_day(world)
    assert run_sync(world.conn, make_client(sandbox), DEST, LIST).plan.planned == 0
