"""Campaign triggers (YAML, after the seed's CampaignTrigger) compiled to SQL over the marts.

A trigger selects (customer, triggering event) pairs. Each pair is logged once in
`activation.campaign_executions` (primary key trigger + customer + event: one execution per customer per
triggering event, however often detection runs) and the customer is added to the trigger's ESP list.
Executions stay `pending` until the ESP confirmed the list add (rejections and failures are retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from dagster_project.activation.client import EspClient, EspError, ProfileRecord, chunked, failed_outcomes
from dagster_project.activation.sync import NON_CONTACTABLE_STATUSES, behavioural_segments_sql
from dagster_project.privacy.field_crypto import load_cipher
from dagster_project.warehouse.connection import table_exists

DEFAULT_TRIGGERS_FILE = Path(__file__).with_name("triggers.yaml")

EVENT_TYPES = ("purchase", "email_open", "email_click")
CUSTOMER_CONDITIONS = (
    "min_engagement_score",
    "max_engagement_score",
    "min_lifetime_value",
    "segments",
    "behavioural_segments",
    "min_predicted_clv",
    "churn_risk_bands",
)
EVENT_DATA_CONDITIONS = ("order_total_min", "order_total_max")

DDL = """
create schema if not exists activation;
create table if not exists activation.campaign_executions (
    trigger_id text not null,
    customer_key text not null,
    event_key text not null,
    event_at timestamptz,
    campaign_template_id text not null,
    list_id text not null,
    status text not null,
    detected_at timestamptz not null default now(),
    synced_at timestamptz,
    attempts integer not null default 0,
    last_error text,
    removed_at timestamptz,
    primary key (trigger_id, customer_key, event_key)
);
alter table activation.campaign_executions add column if not exists removed_at timestamptz;
"""


class TriggerConfigError(ValueError):
    """A trigger definition that cannot be compiled (names the trigger and the problem)."""


@dataclass(frozen=True)
class CampaignTrigger:
    trigger_id: str
    trigger_name: str
    campaign_template_id: str
    list_id: str
    event_conditions: dict[str, Any]
    customer_conditions: dict[str, Any] = field(default_factory=dict)
    priority: int = 1
    active: bool = True


def load_triggers(path: Path = DEFAULT_TRIGGERS_FILE) -> list[CampaignTrigger]:
    document = yaml.safe_load(path.read_text()) or {}
    triggers = []
    for index, raw in enumerate(document.get("triggers", [])):
        name = raw.get("trigger_id", f"#{index}")
        missing = [
            k
            for k in ("trigger_id", "trigger_name", "campaign_template_id", "list_id", "event_conditions")
            if not raw.get(k)
        ]
        if missing:
            raise TriggerConfigError(f"trigger {name} in {path}: missing {missing}")
        unknown = set(raw) - set(CampaignTrigger.__dataclass_fields__)
        if unknown:
            raise TriggerConfigError(f"trigger {name} in {path}: unknown keys {sorted(unknown)}")
        trigger = CampaignTrigger(**{**raw, "customer_conditions": raw.get("customer_conditions") or {}})
        compile_trigger(trigger)  # fail on load, not at run time
        triggers.append(trigger)
    ids = [t.trigger_id for t in triggers]
    if len(ids) != len(set(ids)):
        raise TriggerConfigError(f"{path}: duplicate trigger_id")
    return sorted(triggers, key=lambda t: t.priority)


def compile_trigger(
    trigger: CampaignTrigger, marts_schema: str = "marts", affinity: bool = False
) -> tuple[str, dict[str, Any]]:
    """SQL selecting (customer_key, event_key, event_at) for the trigger, and its parameters. `affinity`
    (ml.customer_value exists): purchased_<category> segments are the top categories by lift."""
    events = dict(trigger.event_conditions)
    event_type = events.pop("event_type", None)
    event_data = events.pop("event_data", None) or {}
    lookback_days = events.pop("lookback_days", None)
    problems = []
    if event_type not in EVENT_TYPES:
        problems.append(f"event_type {event_type!r} is not one of {EVENT_TYPES}")
    if events:
        problems.append(f"unknown event_conditions {sorted(events)}")
    if set(event_data) - set(EVENT_DATA_CONDITIONS):
        problems.append(f"unknown event_data {sorted(set(event_data) - set(EVENT_DATA_CONDITIONS))}")
    if event_data and event_type != "purchase":
        problems.append("event_data (order totals) only applies to event_type purchase")
    unknown_customer = set(trigger.customer_conditions) - set(CUSTOMER_CONDITIONS)
    if unknown_customer:
        problems.append(f"unknown customer_conditions {sorted(unknown_customer)}")
    if problems:
        raise TriggerConfigError(f"trigger {trigger.trigger_id}: " + "; ".join(problems))

    params: dict[str, Any] = {}
    if event_type == "purchase":
        table, time_column = f"{marts_schema}.fct_orders", "ordered_at"
        event_sql = (
            f"select customer_key, 'order:' || order_id::text as event_key, ordered_at as event_at "
            f"from {table} where status = 'completed'"
        )
        if "order_total_min" in event_data:
            event_sql += " and order_total >= %(order_total_min)s"
            params["order_total_min"] = float(event_data["order_total_min"])
        if "order_total_max" in event_data:
            event_sql += " and order_total <= %(order_total_max)s"
            params["order_total_max"] = float(event_data["order_total_max"])
    else:
        table, time_column = f"{marts_schema}.fct_email_events", "event_at"
        kind = event_type.removeprefix("email_")
        event_sql = (
            f"select customer_key, 'email:' || email_event_id::text as event_key, event_at "
            f"from {table} where event_type = %(email_event_type)s"
        )
        params["email_event_type"] = kind
        if kind == "open":
            event_sql += " and not coalesce(is_machine_open, false)"
    if lookback_days is not None:
        # relative to the newest event in the data, not now(): reruns on the same data agree
        event_sql += (
            f" and {time_column} > (select max({time_column}) from {table})"
            " - make_interval(days => %(lookback_days)s)"
        )
        params["lookback_days"] = int(lookback_days)

    conditions = _consent_conditions()
    joins = []
    customer = trigger.customer_conditions
    if {"min_engagement_score", "max_engagement_score", "behavioural_segments"} & set(customer) or (
        "min_lifetime_value" in customer
    ):
        joins.append(f"left join {marts_schema}.fct_customer_features f on f.customer_key = e.customer_key")
    if "min_engagement_score" in customer:
        conditions.append("f.engagement_score >= %(min_engagement_score)s")
        params["min_engagement_score"] = float(customer["min_engagement_score"])
    if "max_engagement_score" in customer:
        conditions.append("f.engagement_score <= %(max_engagement_score)s")
        params["max_engagement_score"] = float(customer["max_engagement_score"])
    if "min_lifetime_value" in customer:
        conditions.append("coalesce(f.lifetime_value, c.lifetime_value) >= %(min_lifetime_value)s")
        params["min_lifetime_value"] = float(customer["min_lifetime_value"])
    if "segments" in customer:
        joins.append("join ml.customer_segments s on s.customer_key = e.customer_key")
        conditions.append("s.segment_name = any(%(segments)s)")
        params["segments"] = [str(s) for s in customer["segments"]]
    if {"min_predicted_clv", "churn_risk_bands"} & set(customer):
        joins.append("join ml.customer_value v on v.customer_key = e.customer_key")
    elif affinity and "behavioural_segments" in customer:
        joins.append("left join ml.customer_value v on v.customer_key = e.customer_key")
    if "min_predicted_clv" in customer:
        conditions.append("v.predicted_clv >= %(min_predicted_clv)s")
        params["min_predicted_clv"] = float(customer["min_predicted_clv"])
    if "churn_risk_bands" in customer:
        conditions.append("v.churn_risk_band = any(%(churn_risk_bands)s)")
        params["churn_risk_bands"] = [str(b) for b in customer["churn_risk_bands"]]
    if "behavioural_segments" in customer:
        conditions.append(f"{behavioural_segments_sql(affinity)} && %(behavioural_segments)s::text[]")
        params["behavioural_segments"] = [str(s) for s in customer["behavioural_segments"]]
    sql = (
        f"with events as ({event_sql})\n"
        "select distinct e.customer_key, e.event_key, e.event_at\n"
        "from events e\n"
        f"join {marts_schema}.dim_customers c on c.customer_key = e.customer_key\n"
        + "".join(join + "\n" for join in joins)
        + "where "
        + "\n  and ".join(conditions)
    )
    return sql, params


def _consent_conditions(alias: str = "c") -> list[str]:
    statuses = ", ".join(f"'{s}'" for s in NON_CONTACTABLE_STATUSES)
    return [
        f"coalesce({alias}.is_contactable, false)",
        f"coalesce({alias}.subscription_status, '') not in ({statuses})",
        f"coalesce({alias}.is_email_valid, false)",
        f"{alias}.email is not null",
    ]


def ensure_tables(conn: psycopg.Connection) -> None:
    conn.execute(DDL)
    conn.commit()


def detect_executions(
    conn: psycopg.Connection, trigger: CampaignTrigger, marts_schema: str = "marts", dry_run: bool = False
) -> int:
    """Log new (customer, event) pairs for the trigger as pending executions; returns how many are new."""
    sql, params = compile_trigger(trigger, marts_schema, affinity=table_exists(conn, "ml.customer_value"))
    if dry_run:
        row = conn.execute(
            f"select count(*) from ({sql}) q where not exists ("
            "select 1 from activation.campaign_executions x where x.trigger_id = %(trigger_id)s"
            " and x.customer_key = q.customer_key and x.event_key = q.event_key)",
            {**params, "trigger_id": trigger.trigger_id},
        ).fetchone()
        return int(row[0])
    cursor = conn.execute(
        f"""
        insert into activation.campaign_executions
          (trigger_id, customer_key, event_key, event_at, campaign_template_id, list_id, status)
        select %(trigger_id)s, q.customer_key, q.event_key, q.event_at, %(template)s, %(list_id)s, 'pending'
        from ({sql}) q
        on conflict (trigger_id, customer_key, event_key) do nothing
        """,
        {
            **params,
            "trigger_id": trigger.trigger_id,
            "template": trigger.campaign_template_id,
            "list_id": trigger.list_id,
        },
    )
    conn.commit()
    return cursor.rowcount


@dataclass
class AudienceResult:
    trigger_id: str
    list_id: str
    new_executions: int = 0
    synced_customers: int = 0
    skipped_not_contactable: int = 0
    removed_not_contactable: int = 0
    failed: int = 0
    pending: int = 0
    not_ready: str | None = None
    """Why the trigger selected nobody without looking (its ML inputs are missing or were not fitted)."""


def sync_audience(
    conn: psycopg.Connection,
    client: EspClient | None,
    trigger: CampaignTrigger,
    *,
    marts_schema: str = "marts",
    dry_run: bool = False,
) -> AudienceResult:
    """Detect executions, then add the customers of pending executions to the trigger's ESP list."""
    ensure_tables(conn)
    result = AudienceResult(trigger.trigger_id, trigger.list_id)
    result.new_executions = detect_executions(conn, trigger, marts_schema, dry_run)
    contactable = " and ".join(_consent_conditions())
    result.removed_not_contactable = remove_non_contactable(
        conn, client, trigger, contactable, marts_schema, dry_run
    )
    rows = conn.execute(
        f"""
        select x.customer_key, c.email_encrypted, c.first_name, c.last_name, ({contactable}) as contactable
        from activation.campaign_executions x
        left join {marts_schema}.dim_customers c on c.customer_key = x.customer_key
        where x.trigger_id = %s and x.status = 'pending'
        group by x.customer_key, c.email_encrypted, c.first_name, c.last_name, contactable
        order by x.customer_key
        """,
        (trigger.trigger_id,),
    ).fetchall()
    cipher = load_cipher()  # dim_customers holds the email's token and ciphertext: decrypted to send
    records = [
        ProfileRecord(key, cipher.decrypt(email), first, last) for key, email, first, last, ok in rows if ok
    ]
    blocked = [key for key, _e, _f, _l, ok in rows if not ok]
    result.skipped_not_contactable = len(blocked)
    if dry_run:
        result.pending = len(records)
        return result
    if blocked:
        conn.execute(
            "update activation.campaign_executions set status = 'skipped_not_contactable' "
            "where trigger_id = %s and status = 'pending' and customer_key = any(%s)",
            (trigger.trigger_id, blocked),
        )
        conn.commit()
    if records and client is None:
        raise ValueError("syncing audiences needs an ESP client")
    for chunk in chunked(records, client.upsert_batch_size if client else 1):
        try:
            outcomes = client.add_to_audience(chunk, trigger.list_id)
        except EspError as error:
            outcomes = failed_outcomes(chunk, str(error))
        _apply_outcomes(conn, trigger.trigger_id, outcomes)
        result.synced_customers += sum(1 for o in outcomes if o.status == "ok")
        result.failed += sum(1 for o in outcomes if o.status != "ok")
    return result


def remove_non_contactable(
    conn: psycopg.Connection,
    client: EspClient | None,
    trigger: CampaignTrigger,
    contactable: str,
    marts_schema: str,
    dry_run: bool,
) -> int:
    """Take people who stopped being contactable out of the trigger's list (they were added earlier)."""
    rows = conn.execute(
        f"""
        select distinct x.customer_key, c.email_encrypted
        from activation.campaign_executions x
        join {marts_schema}.dim_customers c on c.customer_key = x.customer_key
        where x.trigger_id = %s and x.status = 'synced' and x.removed_at is null
          and c.email is not null and not ({contactable})
        """,
        (trigger.trigger_id,),
    ).fetchall()
    if dry_run or not rows:
        return len(rows)
    if client is None:
        raise ValueError("removing people from audiences needs an ESP client")
    removed = 0
    cipher = load_cipher()
    records = [ProfileRecord(key, cipher.decrypt(email)) for key, email in rows]
    for chunk in chunked(records, client.removal_batch_size):
        try:
            outcomes = client.remove_from_list(chunk, trigger.list_id)
        except EspError:
            continue  # stays marked as synced: retried next run
        done = [o.customer_key for o in outcomes if o.status == "ok"]
        conn.execute(
            "update activation.campaign_executions set removed_at = now() "
            "where trigger_id = %s and status = 'synced' and customer_key = any(%s)",
            (trigger.trigger_id, done),
        )
        conn.commit()
        removed += len(done)
    return removed


def _apply_outcomes(conn: psycopg.Connection, trigger_id: str, outcomes: Sequence) -> None:
    ok = [o.customer_key for o in outcomes if o.status == "ok"]
    conn.execute(
        "update activation.campaign_executions set status = 'synced', synced_at = now(), "
        "attempts = attempts + 1, last_error = null "
        "where trigger_id = %s and status = 'pending' and customer_key = any(%s)",
        (trigger_id, ok),
    )
    with conn.cursor() as cursor:
        cursor.executemany(
            "update activation.campaign_executions set attempts = attempts + 1, last_error = %s "
            "where trigger_id = %s and status = 'pending' and customer_key = %s",
            [(o.reason, trigger_id, o.customer_key) for o in outcomes if o.status != "ok"],
        )
    conn.commit()


def ml_not_ready(conn: psycopg.Connection, trigger: CampaignTrigger) -> str | None:
    """Why the trigger's ML conditions cannot select anyone yet, or None when their tables are usable.

    A trigger on ml.customer_value before its first materialization, or after a run that was
    insufficient_data (no predictions, only the reason), selects nobody and says why instead of failing."""
    customer = set(trigger.customer_conditions)
    if "segments" in customer and not table_exists(conn, "ml.customer_segments"):
        return "ml.customer_segments has not been materialized yet"
    if not {"min_predicted_clv", "churn_risk_bands"} & customer:
        return None
    if not table_exists(conn, "ml.customer_value"):
        return "ml.customer_value has not been materialized yet"
    if not table_exists(conn, "ml.model_runs"):
        return None
    row = conn.execute(
        "select metrics->'clv'->>'status', metrics->'clv'->>'reason', metrics->'clv'->>'spend_reason' "
        "from ml.model_runs where model = 'customer_value' order by created_at desc limit 1"
    ).fetchone()
    if row is None:
        return None
    status, reason, spend_reason = row
    if status != "ok":
        return f"the customer value model is {status}: {reason}"
    if "min_predicted_clv" in customer and spend_reason:
        return f"no predicted CLV (the spend model was not fitted: {spend_reason})"
    return None


def sync_all_audiences(
    conn: psycopg.Connection,
    client: EspClient | None,
    triggers: Sequence[CampaignTrigger],
    *,
    marts_schema: str = "marts",
    dry_run: bool = False,
) -> list[AudienceResult]:
    results = []
    for trigger in triggers:
        if not trigger.active:
            continue
        needed = (
            ["fct_orders"]
            if trigger.event_conditions.get("event_type") == "purchase"
            else ["fct_email_events"]
        )
        if not all(table_exists(conn, f"{marts_schema}.{name}") for name in needed):
            raise ValueError(
                f"trigger {trigger.trigger_id} needs {marts_schema}.{needed[0]}, which does not exist"
            )
        reason = ml_not_ready(conn, trigger)
        if reason:
            results.append(AudienceResult(trigger.trigger_id, trigger.list_id, not_ready=reason))
            continue
        results.append(sync_audience(conn, client, trigger, marts_schema=marts_schema, dry_run=dry_run))
    return results
