"""Reading what the customer-value model needs (completed orders, customers, engagement, web sessions,
the data's as-of) and writing ml.customer_value with its ml.model_runs row in one transaction."""

from __future__ import annotations

import pandas as pd
import psycopg

from dagster_project.ml.io import (
    MARTS,
    read_data_as_of,
    read_email_events,
    read_frame,
    replace_model_table,
)
from dagster_project.warehouse.connection import table_exists
from ml.affinity import campaign_value
from ml.registry import ModelRun

BANDS = "churn_risk_band in ('Low', 'Medium', 'High')"

CUSTOMER_VALUE_DDL = f"""
create table if not exists ml.customer_value (
    customer_key text primary key,
    historic_clv double precision not null,
    p_alive double precision check (p_alive between 0 and 1),
    expected_purchases_90d double precision check (expected_purchases_90d >= 0),
    expected_purchases_365d double precision check (expected_purchases_365d >= 0),
    expected_order_value double precision,
    predicted_clv double precision,
    predicted_clv_discounted double precision,
    churn_risk double precision check (churn_risk between 0 and 1),
    churn_risk_band text check ({BANDS}),
    expected_next_order_at timestamptz,
    avg_days_between_orders double precision,
    purchase_propensity_30d double precision check (purchase_propensity_30d between 0 and 1),
    top_categories text,
    model_version text not null
)"""


def read_completed_orders(conn: psycopg.Connection) -> pd.DataFrame:
    return read_frame(
        conn,
        "select order_id, customer_key, ordered_at, order_total, categories "
        f"from {MARTS}.fct_orders where is_completed and customer_key is not null and ordered_at is not null",
        text_columns=("order_id", "customer_key", "categories"),
        time_columns=("ordered_at",),
    )


def read_value_customers(conn: psycopg.Connection) -> pd.DataFrame:
    return read_frame(
        conn,
        f"select customer_key, registered_at from {MARTS}.dim_customers order by customer_key",
        text_columns=("customer_key",),
        time_columns=("registered_at",),
    )


def read_web_sessions(conn: psycopg.Connection) -> pd.DataFrame | None:
    if not table_exists(conn, f"{MARTS}.fct_web_sessions"):
        return None
    return read_frame(
        conn,
        f"select customer_key, started_at, page_views from {MARTS}.fct_web_sessions "
        "where customer_key is not null",
        text_columns=("customer_key",),
        time_columns=("started_at",),
    )


def read_engagement(conn: psycopg.Connection) -> pd.DataFrame | None:
    if not table_exists(conn, f"{MARTS}.fct_email_events"):
        return None
    return read_email_events(conn)


def read_as_of(conn: psycopg.Connection, orders: pd.DataFrame) -> pd.Timestamp:
    """The build's as-of (dbt's int_calendar__as_of), else the newest order: never the wall clock."""
    as_of = read_data_as_of(conn)
    if as_of is not None:
        return as_of
    latest = orders["ordered_at"].max() if len(orders) else pd.NaT
    return pd.Timestamp("1970-01-01", tz="UTC") if pd.isna(latest) else pd.Timestamp(latest)


def write_customer_value(conn: psycopg.Connection, run: ModelRun, values: pd.DataFrame) -> None:
    replace_model_table(conn, "ml.customer_value", CUSTOMER_VALUE_DDL, values, run)


def campaign_value_by_audience(conn: psycopg.Connection, cost_per_send: float) -> pd.DataFrame | None:
    """Expected value of one send to each trigger audience (its current members): sum of 30-day
    propensity x expected order value (the base's mean for customers without one) - cost per send."""
    if not (table_exists(conn, "ml.customer_value") and table_exists(conn, "activation.campaign_executions")):
        return None
    members = read_frame(
        conn,
        "select e.trigger_id, v.purchase_propensity_30d, "
        "coalesce(v.expected_order_value, (select avg(expected_order_value) from ml.customer_value)) "
        "as order_value from (select distinct trigger_id, customer_key from activation.campaign_executions "
        "where removed_at is null) e left join ml.customer_value v using (customer_key)",
        text_columns=("trigger_id",),
    )
    rows = [
        {
            "trigger_id": trigger,
            **campaign_value(group["purchase_propensity_30d"], group["order_value"], cost_per_send),
        }
        for trigger, group in members.groupby("trigger_id", sort=True)
    ]
    return pd.DataFrame(rows)
