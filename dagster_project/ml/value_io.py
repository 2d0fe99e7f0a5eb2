"""Reading what the customer-value model needs (completed orders, customers, engagement, web sessions,
the data's as-of) and writing ml.customer_value with its ml.model_runs row in one transaction.

ml.customer_value_state names the fit in use and the newest `_built_at` of the stamped marts its rows
were scored up to: a daily run reads and scores only the customers built after it (ml/value_refresh.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg

from dagster_project.ml.io import (
    EMAIL_EVENT_COLUMNS,
    EMAIL_EVENT_TYPES,
    ENGAGEMENT,
    MARTS,
    copy_frame,
    read_data_as_of,
    read_email_events,
    read_fit_in_use,
    read_frame,
    replace_model_table,
    upsert_run,
)
from dagster_project.warehouse.connection import has_column, table_exists
from ml.affinity import campaign_value
from ml.config import MLConfig
from ml.registry import ModelRun
from ml.value_pipeline import CUSTOMER_VALUE_MODEL, CustomerValueRun
from ml.value_refresh import StoredValue, rescore_customer_value

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
    model_version text not null,
    scored_as_of timestamptz,
    scored_at timestamptz not null default now()
);
alter table ml.customer_value add column if not exists scored_as_of timestamptz;
alter table ml.customer_value add column if not exists scored_at timestamptz not null default now();
create index if not exists customer_value_scored_at on ml.customer_value (scored_at);
create table if not exists ml.customer_value_state (
    fitted_version text not null,
    inputs_built_until timestamptz
)"""
STATE = "ml.customer_value_state"
STAMPED = (f"{MARTS}.dim_customers", "intermediate.int_customers__features")
"""The tables whose `_built_at` says whose inputs were rebuilt (the features' touched keys cover orders,
email and web events, window edges and key merges; the profile covers registration)."""
SCOPE = "customer_value_scope"


def _in_scope(scoped: bool, column: str = "customer_key") -> str:
    """A filter to the customers of this run's scope table (daily runs), or nothing (a refit)."""
    return f" and {column} in (select customer_key from {SCOPE})" if scoped else ""


def read_completed_orders(conn: psycopg.Connection, scoped: bool = False) -> pd.DataFrame:
    return read_frame(
        conn,
        "select order_id, customer_key, ordered_at, order_total, categories "
        f"from {MARTS}.fct_orders where is_completed and customer_key is not null and ordered_at is not null"
        + _in_scope(scoped),
        text_columns=("order_id", "customer_key", "categories"),
        time_columns=("ordered_at",),
    )


def read_value_customers(conn: psycopg.Connection, scoped: bool = False) -> pd.DataFrame:
    return read_frame(
        conn,
        f"select customer_key, registered_at from {MARTS}.dim_customers where true{_in_scope(scoped)} "
        "order by customer_key",
        text_columns=("customer_key",),
        time_columns=("registered_at",),
    )


def read_web_sessions(conn: psycopg.Connection, scoped: bool = False) -> pd.DataFrame | None:
    if not table_exists(conn, f"{MARTS}.fct_web_sessions"):
        return None
    return read_frame(
        conn,
        f"select customer_key, started_at, page_views from {MARTS}.fct_web_sessions "
        "where customer_key is not null" + _in_scope(scoped),
        text_columns=("customer_key",),
        time_columns=("started_at",),
    )


def read_engagement(conn: psycopg.Connection, scoped: bool = False) -> pd.DataFrame | None:
    if not table_exists(conn, f"{MARTS}.fct_email_events"):
        return None
    if not scoped:
        return read_email_events(conn)
    return read_frame(
        conn,
        f"select {EMAIL_EVENT_COLUMNS} from {MARTS}.fct_email_events where {ENGAGEMENT}" + _in_scope(True),
        **EMAIL_EVENT_TYPES,
    )


def inputs_built_until(conn: psycopg.Connection) -> tuple[bool, pd.Timestamp | None]:
    """(whether both stamped tables carry `_built_at`, the newest stamp of either)."""
    until = None
    for table in STAMPED:
        if not has_column(conn, table, "_built_at"):
            return False, None
        newest = conn.execute(f"select max(_built_at) from {table}").fetchone()[0]
        if newest is not None:
            newest = pd.Timestamp(newest).tz_convert("UTC")
            until = newest if until is None else max(until, newest)
    return True, until


def read_stored(conn: psycopg.Connection, models_dir: Path) -> tuple[StoredValue | None, pd.Timestamp | None]:
    """The fit in use with its record, and the stamp its rows were scored up to (None, None: none)."""
    tables = ("ml.customer_value",)
    return read_fit_in_use(
        conn, models_dir, CUSTOMER_VALUE_MODEL, STATE, "inputs_built_until", tables, StoredValue
    )


def refresh(
    conn: psycopg.Connection,
    stored: StoredValue,
    after: pd.Timestamp,
    until: pd.Timestamp | None,
    config: MLConfig,
    as_of: pd.Timestamp,
) -> CustomerValueRun:
    """A daily run: the customers whose profile or features were built after `after` and those without a
    row are scored with the stored fit (their rows replaced), the rows of customers gone are dropped."""
    dims, features = STAMPED
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtext('ml.customer_value'))")
        cursor.execute(
            f"create temporary table {SCOPE} on commit drop as select d.customer_key from {dims} d "
            f"where d._built_at > %(after)s or d.customer_key in (select customer_key from {features} "
            "where _built_at > %(after)s) or not exists (select from ml.customer_value v "
            "where v.customer_key = d.customer_key)",
            {"after": after},
        )
        cursor.execute(f"analyze {SCOPE}")
        customers = read_value_customers(conn, scoped=True)
        run = rescore_customer_value(
            stored,
            customers,
            read_completed_orders(conn, scoped=True),
            read_engagement(conn, scoped=True),
            read_web_sessions(conn, scoped=True),
            as_of,
            config,
            {"inputs_built_until": None if until is None else until.isoformat()},
        )
        cursor.execute(
            f"delete from ml.customer_value v where v.customer_key in (select customer_key from {SCOPE}) "
            f"or not exists (select from {dims} d where d.customer_key = v.customer_key)"
        )
        run.run.data_snapshot["dropped_or_replaced_rows"] = cursor.rowcount
        copy_frame(conn, "ml.customer_value", run.values)
        run.run.metrics["customers"] = cursor.execute("select count(*) from ml.customer_value").fetchone()[0]
        _write_state(conn, stored.fitted_version, until)
        upsert_run(conn, run.run)
    return run


def _write_state(conn: psycopg.Connection, fitted_version: str, until: pd.Timestamp | None) -> None:
    with conn.cursor() as cursor:
        cursor.execute(f"truncate {STATE}")
        cursor.execute(f"insert into {STATE} values (%s, %s)", (fitted_version, until))


def read_as_of(conn: psycopg.Connection, orders: pd.DataFrame) -> pd.Timestamp:
    """The build's as-of (dbt's int_calendar__as_of), else the newest order: never the wall clock."""
    as_of = read_data_as_of(conn)
    if as_of is not None:
        return as_of
    latest = orders["ordered_at"].max() if len(orders) else pd.NaT
    return pd.Timestamp("1970-01-01", tz="UTC") if pd.isna(latest) else pd.Timestamp(latest)


def write_customer_value(
    conn: psycopg.Connection, run: ModelRun, values: pd.DataFrame, until: pd.Timestamp | None = None
) -> None:
    """After a refit: every row, and the fit in use scored up to `until` (None: the next run refits)."""
    with conn.transaction():
        replace_model_table(conn, "ml.customer_value", CUSTOMER_VALUE_DDL, values, run)
        _write_state(conn, run.version, until)


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
