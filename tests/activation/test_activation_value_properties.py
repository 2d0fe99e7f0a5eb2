"""The profile sync pushes ml.customer_value as properties; a missing prediction is no property."""

from __future__ import annotations

from activation_world import make_client, sandbox, world  # noqa: F401

from dagster_project.activation.sync import run_sync
from dagster_project.activation.triggers import compile_trigger, load_triggers


def test_customer_value_reaches_the_esp_as_profile_properties(world, sandbox):  # noqa: F811
    valued, unvalued = (
        row[0]
        for row in world.conn.execute(
            "select customer_key from marts.dim_customers where is_contactable order by 1 limit 2"
        ).fetchall()
    )
    world.conn.execute(
        "create table ml.customer_value (customer_key text primary key, historic_clv float8, p_alive float8, "
        "predicted_clv float8, churn_risk float8, churn_risk_band text, expected_next_order_at timestamptz, "
        "avg_days_between_orders float8, purchase_propensity_30d float8, top_categories text)"
    )
    world.conn.execute(
        "insert into ml.customer_value values "
        "(%s, 120.5, 0.8123, 310.456, 0.4567, 'Medium', '2026-12-24T00:00:00Z', 33.333, 0.21, "
        "'books,garden'),"
        "(%s, 0, null, null, null, null, null, null, 0.05, null)",
        (valued, unvalued),
    )
    world.conn.commit()
    run_sync(world.conn, make_client(sandbox), "sandbox:sendwise", "sendwise")
    profiles = {p["external_id"]: p["properties"] for p in sandbox.store.profiles.values()}
    assert profiles[valued]["sendwise_historic_clv"] == 120.5
    assert profiles[valued]["sendwise_predicted_clv"] == 310.46
    assert profiles[valued]["sendwise_churn_risk_band"] == "Medium"
    assert profiles[valued]["sendwise_churn_risk"] == 0.457
    assert profiles[valued]["sendwise_expected_next_order_date"] == "2026-12-24"
    assert profiles[valued]["sendwise_top_categories"] == ["books", "garden"]
    assert profiles[valued]["sendwise_purchase_propensity_30d"] == 0.21
    assert "sendwise_predicted_clv" not in profiles[unvalued]  # no model output, no invented property
    assert profiles[unvalued]["sendwise_purchase_propensity_30d"] == 0.05


def test_high_value_high_churn_trigger_selects_by_predicted_clv_and_band(world):  # noqa: F811
    buyers = [
        row[0]
        for row in world.conn.execute(
            "select customer_key from marts.dim_customers where is_contactable order by 1 limit 3"
        ).fetchall()
    ]
    for number, key in enumerate(buyers):
        world.conn.execute(
            "insert into marts.fct_orders values (%s, %s, 'completed', 80, timestamptz '2026-06-01')",
            (900_000 + number, key),
        )
    assert len(buyers) == 3
    world.conn.execute(
        "create table ml.customer_value (customer_key text primary key, predicted_clv float8, "
        "churn_risk_band text)"
    )
    world.conn.execute(
        "insert into ml.customer_value values (%s, 500, 'High'), (%s, 500, 'Low'), (%s, 20, 'High')",
        buyers,
    )
    trigger = next(t for t in load_triggers() if t.trigger_id == "trigger_004")
    sql, params = compile_trigger(trigger)
    selected = {row[0] for row in world.conn.execute(sql, params).fetchall()}
    assert selected == {buyers[0]}  # high value and high risk; not the low-risk one, not the low-value one
