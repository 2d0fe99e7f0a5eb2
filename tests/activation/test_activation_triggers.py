"""Campaign triggers: YAML -> SQL over the marts -> one execution per customer per event -> ESP list."""

from __future__ import annotations

from pathlib import Path

import pytest
from activation_world import AS_OF, list_emails, make_client, sandbox, world  # noqa: F401

from dagster_project.activation.triggers import (
    CampaignTrigger,
    TriggerConfigError,
    compile_trigger,
    load_triggers,
    sync_audience,
)

THANK_YOU = CampaignTrigger(
    trigger_id="t_thanks",
    trigger_name="Post-Purchase Thank You",
    campaign_template_id="template_thank_you",
    list_id="thanks",
    event_conditions={"event_type": "purchase", "event_data": {"order_total_min": 50}, "lookback_days": 30},
    customer_conditions={"min_engagement_score": 0.3},
)


def add_orders(world, orders):  # noqa: F811
    world.conn.cursor().executemany("insert into marts.fct_orders values (%s, %s, %s, %s, %s)", orders)
    world.conn.commit()


def contactable_keys(world) -> list[str]:  # noqa: F811
    return sorted({f"cust-{i:06d}" for i in range(world.customers)} - world.not_contactable)


def score(world, key, value):  # noqa: F811
    world.conn.execute(
        "update marts.fct_customer_features set engagement_score = %s where customer_key = %s", (value, key)
    )
    world.conn.commit()


def test_the_shipped_yaml_has_the_seed_example():
    triggers = {t.trigger_id: t for t in load_triggers()}
    thanks = triggers["trigger_001"]
    assert thanks.event_conditions["event_type"] == "purchase"
    assert thanks.event_conditions["event_data"]["order_total_min"] == 50
    assert thanks.customer_conditions == {"min_engagement_score": 0.3}
    sql, params = compile_trigger(thanks)
    assert "order_total >= %(order_total_min)s" in sql and params["min_engagement_score"] == 0.3
    assert "is_contactable" in sql


def test_bad_trigger_definitions_name_the_trigger_and_the_problem(tmp_path: Path):
    path = tmp_path / "triggers.yaml"
    path.write_text(
        "triggers:\n  - trigger_id: oops\n    trigger_name: x\n    campaign_template_id: t\n    list_id: l\n"
        "    event_conditions: {event_type: pageview}\n    customer_conditions: {min_karma: 3}\n"
    )
    with pytest.raises(TriggerConfigError, match=r"oops.*pageview.*min_karma"):
        load_triggers(path)


def test_executions_happen_once_per_customer_per_event_and_respect_consent(world, sandbox):  # noqa: F811
    a, b, c = contactable_keys(world)[:3]
    blocked = sorted(world.not_contactable)[0]
    for key in (a, b, c, blocked):
        score(world, key, 0.8)
    world.set_status([c], "subscribed")
    world.conn.execute(
        "update marts.dim_customers set is_contactable = true, is_email_valid = true, "
        "email = 'c@example.com' where customer_key = %s",
        (c,),
    )
    score(world, c, 0.1)  # below min_engagement_score
    world.conn.commit()
    add_orders(
        world,
        [
            (1, a, "completed", 75, AS_OF),
            (2, a, "completed", 60, AS_OF),  # a second triggering event for the same customer
            (3, b, "completed", 20, AS_OF),  # too small
            (4, b, "cancelled", 500, AS_OF),  # not completed
            (5, c, "completed", 90, AS_OF),  # engagement too low
            (6, blocked, "completed", 90, AS_OF),  # not contactable
            (7, b, "completed", 99, AS_OF.replace(month=4)),  # outside the 30-day lookback
        ],
    )
    client = make_client(sandbox)
    first = sync_audience(world.conn, client, THANK_YOU)
    assert first.new_executions == 2 and first.synced_customers == 1
    rows = world.conn.execute(
        "select customer_key, event_key, status from activation.campaign_executions order by event_key"
    ).fetchall()
    assert rows == [(a, "order:1", "synced"), (a, "order:2", "synced")]
    person_a = [world.email_of(a)]
    assert list_emails(sandbox, "thanks") == [person_a[0]]

    before = sandbox.store.request_count
    again = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert again.new_executions == 0 and sandbox.store.request_count == before

    add_orders(world, [(8, b, "completed", 51, AS_OF)])
    third = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert third.new_executions == 1 and third.synced_customers == 1
    assert len(list_emails(sandbox, "thanks")) == 2

    world.set_status([a], "unsubscribed")  # consent withdrawn after the list add
    fourth = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert fourth.removed_not_contactable == 1 and person_a[0] not in list_emails(sandbox, "thanks")
    assert len(list_emails(sandbox, "thanks")) == 1
    before = sandbox.store.request_count
    assert sync_audience(world.conn, make_client(sandbox), THANK_YOU).removed_not_contactable == 0
    assert sandbox.store.request_count == before


def test_failed_list_adds_stay_pending_and_are_retried(world, sandbox):  # noqa: F811
    key = contactable_keys(world)[0]
    score(world, key, 0.9)
    add_orders(world, [(1, key, "completed", 120, AS_OF)])
    email = world.email_of(key)
    sandbox.faults.update({"reject_emails": {email: "profile is suppressed"}})
    first = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert first.failed == 1
    status, attempts, error = world.conn.execute(
        "select status, attempts, last_error from activation.campaign_executions"
    ).fetchone()
    assert (status, attempts) == ("pending", 1) and "suppressed" in error
    sandbox.faults.update({"reject_emails": {}})
    second = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert second.new_executions == 0 and second.synced_customers == 1
    assert world.conn.execute("select status from activation.campaign_executions").fetchone()[0] == "synced"


def test_an_unsubscribe_before_the_list_add_skips_the_execution(world, sandbox):  # noqa: F811
    key = contactable_keys(world)[0]
    score(world, key, 0.9)
    add_orders(world, [(1, key, "completed", 120, AS_OF)])
    sync_audience(world.conn, None, THANK_YOU, dry_run=True)  # dry run: nothing logged
    assert world.conn.execute("select count(*) from activation.campaign_executions").fetchone()[0] == 0
    world.conn.execute(
        "insert into activation.campaign_executions "
        "(trigger_id, customer_key, event_key, campaign_template_id, list_id, status) "
        "values ('t_thanks', %s, 'order:1', 'template_thank_you', 'thanks', 'pending')",
        (key,),
    )
    world.conn.commit()
    world.set_status([key], "unsubscribed")
    result = sync_audience(world.conn, make_client(sandbox), THANK_YOU)
    assert result.skipped_not_contactable == 1 and sandbox.store.request_count == 0
    status = world.conn.execute("select status from activation.campaign_executions").fetchone()[0]
    assert status == "skipped_not_contactable"
