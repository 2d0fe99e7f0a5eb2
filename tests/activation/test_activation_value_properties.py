"""The profile sync pushes ml.customer_value as properties; a missing prediction is no property."""

from __future__ import annotations

import pandas as pd
import pytest
from activation_world import make_client, sandbox, world, write_two_customer_values  # noqa: F401

from dagster_project.activation.cli import campaign_value_lines
from dagster_project.activation.sync import run_sync
from dagster_project.activation.triggers import (
    CampaignTrigger,
    compile_trigger,
    ensure_tables,
    load_triggers,
    sync_all_audiences,
)
from dagster_project.ml.io import record_model_run
from dagster_project.ml.value_io import CUSTOMER_VALUE_DDL, campaign_value_by_audience
from ml.affinity import category_affinity
from ml.registry import ModelRun


def test_customer_value_reaches_the_esp_as_profile_properties(world, sandbox):  # noqa: F811
    valued, unvalued = write_two_customer_values(world.conn)
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


def _value_run(status: str, reason: str | None) -> ModelRun:
    clv = {"status": status, "reason": reason, "spend_reason": None}
    return ModelRun("customer_value", f"customer_value-{status}", {}, {}, {"clv": clv})


def test_high_value_high_churn_trigger_selects_nobody_and_says_why_until_there_are_predictions(
    world,  # noqa: F811
):
    ensure_tables(world.conn)
    trigger = next(t for t in load_triggers() if t.trigger_id == "trigger_004")
    assert trigger.active

    def audience():
        (result,) = sync_all_audiences(world.conn, None, [trigger], dry_run=True)
        return result

    # before ml.customer_value was ever materialized: no crash, nobody, the reason
    first = audience()
    assert first.not_ready == "ml.customer_value has not been materialized yet"
    assert (first.new_executions, first.pending) == (0, 0)

    buyer = world.conn.execute(
        "select customer_key from marts.dim_customers where is_contactable order by 1 limit 1"
    ).fetchone()[0]
    world.conn.execute(
        "insert into marts.fct_orders values (900100, %s, 'completed', 80, timestamptz '2026-06-01')",
        (buyer,),
    )
    world.conn.execute(
        "create table ml.customer_value (customer_key text primary key, predicted_clv float8, "
        "churn_risk_band text)"
    )
    world.conn.execute("insert into ml.customer_value values (%s, null, null)", (buyer,))
    thin = "40 customers with a completed order, fewer than the minimum 100"
    record_model_run(world.conn, _value_run("insufficient_data", thin))
    assert audience().not_ready == f"the customer value model is insufficient_data: {thin}"

    # a fitted run with predictions: the trigger selects again
    world.conn.execute("update ml.customer_value set predicted_clv = 500, churn_risk_band = 'High'")
    world.conn.execute("delete from ml.model_runs")
    record_model_run(world.conn, _value_run("ok", None))
    ready = audience()
    assert ready.not_ready is None and ready.new_executions == 1
    assert world.conn.execute("select count(*) from activation.campaign_executions").fetchone()[0] == 0


def test_expected_campaign_value_per_audience(world):  # noqa: F811
    ensure_tables(world.conn)
    world.conn.execute(
        "create table ml.customer_value (customer_key text primary key, purchase_propensity_30d float8, "
        "expected_order_value float8)"
    )
    world.conn.execute(
        "insert into ml.customer_value values ('k1', 0.5, 40), ('k2', 0.1, null), ('k3', 0.9, 20)"
    )
    world.conn.execute(
        "insert into activation.campaign_executions (trigger_id, customer_key, event_key, "
        "campaign_template_id, "
        "list_id, status, removed_at) values "
        "('t1', 'k1', 'o1', 'x', 'l', 'synced', null), ('t1', 'k1', 'o2', 'x', 'l', 'synced', null), "
        "('t1', 'k2', 'o3', 'x', 'l', 'pending', null), ('t2', 'k3', 'o4', 'x', 'l', 'synced', now())"
    )
    values = campaign_value_by_audience(world.conn, cost_per_send=0.5).set_index("trigger_id")
    assert list(values.index) == ["t1"]  # t2's only member was removed
    # k1 once (two orders, one member) + k2 at the base's mean order value (40 + 20) / 2 = 30
    assert values.loc["t1", "members"] == 2
    assert values.loc["t1", "expected_revenue"] == pytest.approx(0.5 * 40 + 0.1 * 30)
    assert values.loc["t1", "expected_value"] == pytest.approx(23.0 - 1.0)
    # `sendwise sync` prints it per audience, at the configured cost per send (0.01)
    assert campaign_value_lines(world.conn) == [
        "audience t1: expected campaign value 22.98 = 0.6 expected orders worth 23.00 - 0.02 for 2 sends"
    ]


# Hand world for the category affinity: per customer, the category of each completed order.
BOUGHT = {
    "A": ["books"] * 4 + ["garden"],
    "B": ["toys"],
    "C": ["garden"] * 3,
    "D": ["books"] * 2 + ["garden"] * 2,
}


def test_purchased_category_segments_come_from_the_category_affinity(world, sandbox):  # noqa: F811
    """By hand (5 pseudo-orders of the base mix; base: books 6, garden 6, toys 1 of 13 orders):
    lift = (n_ck + 5 s_k) / (n_c + 5) / s_k. A: books (4 + 30/13) / 10 / (6/13) = 82/60 > 1, garden
    43/60 < 1; B: toys (1 + 5/13) / 6 / (1/13) = 3; C: garden 69/48; D: books = garden = 56/54 (ties by
    name). So A is no purchased_garden segment though A bought garden once."""
    orders = pd.DataFrame(
        [(who, category) for who, bought in BOUGHT.items() for category in bought],
        columns=["customer_key", "categories"],
    )
    affinity = category_affinity(orders, prior_strength=5.0, top=3).set_index("customer_key")
    expected_top = {"A": "books", "B": "toys", "C": "garden", "D": "books,garden"}
    assert affinity["top_categories"].to_dict() == expected_top
    assert affinity.loc["A", "top_category_lift"] == pytest.approx(82 / 60)
    assert affinity.loc["B", "top_category_lift"] == pytest.approx(3.0)

    keys = dict(
        zip(
            BOUGHT,
            (
                row[0]
                for row in world.conn.execute(
                    "select customer_key from marts.dim_customers where is_contactable order by 1 limit 4"
                ).fetchall()
            ),
            strict=True,
        )
    )
    for who, bought in BOUGHT.items():  # the mart: purchased_<category> for every category bought
        mart = ",".join(["recent_purchaser", *sorted({f"purchased_{c}" for c in bought})])
        world.conn.execute(
            "update marts.fct_customer_features set behavioural_segments = %s where customer_key = %s",
            (mart, keys[who]),
        )
    world.conn.execute(CUSTOMER_VALUE_DDL)
    for who, top in expected_top.items():
        world.conn.execute(
            "insert into ml.customer_value (customer_key, historic_clv, top_categories, model_version) "
            "values (%s, 0, %s, 'hand')",
            (keys[who], top),
        )
    world.conn.commit()

    run_sync(world.conn, make_client(sandbox), "sandbox:sendwise", "sendwise")
    profiles = {p["external_id"]: p["properties"] for p in sandbox.store.profiles.values()}
    pushed = {who: profiles[keys[who]]["sendwise_behavioural_segments"] for who in BOUGHT}
    assert pushed == {
        "A": ["recent_purchaser", "purchased_books"],
        "B": ["recent_purchaser", "purchased_toys"],
        "C": ["recent_purchaser", "purchased_garden"],
        "D": ["recent_purchaser", "purchased_books", "purchased_garden"],
    }

    # a trigger on purchased_garden selects by the affinity too: C and D, not A
    for number, who in enumerate(BOUGHT):
        world.conn.execute(
            "insert into marts.fct_orders values (%s, %s, 'completed', 80, timestamptz '2026-06-01')",
            (910_000 + number, keys[who]),
        )
    trigger = CampaignTrigger(
        "t_garden", "Garden fans", "tpl", "l", {"event_type": "purchase"},
        {"behavioural_segments": ["purchased_garden"]},
    )  # fmt: skip
    sql, params = compile_trigger(trigger, affinity=True)
    selected = {row[0] for row in world.conn.execute(sql, params).fetchall()}
    assert selected == {keys["C"], keys["D"]}
    sql, params = compile_trigger(trigger)  # before ml.customer_value exists: the mart's segments
    assert {row[0] for row in world.conn.execute(sql, params).fetchall()} == {keys["A"], keys["C"], keys["D"]}
