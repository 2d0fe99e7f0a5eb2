"""Fixtures for the dbt tests: raw tables from the contract DDL, a hand-made world, one shared build."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import pytest

from dagster_project.dbt.project import run_dbt
from dagster_project.warehouse import connection, embedded

UTC = UTC

# The raw layer exactly as contracts.md describes it (the extraction assets create the same tables).
RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.shop_customers (customer_id bigint primary key, email text, first_name text,
  last_name text, phone text, accepts_marketing boolean, created_at timestamptz, updated_at timestamptz,
  _loaded_at timestamptz, _batch_id text);
create table if not exists raw.shop_products (product_id bigint primary key, sku text, name text,
  category text, price numeric(10,2), created_at timestamptz, updated_at timestamptz,
  _loaded_at timestamptz, _batch_id text);
create table if not exists raw.shop_orders (order_id bigint primary key, customer_id bigint, status text,
  order_total numeric(12,2), currency text, ordered_at timestamptz, created_at timestamptz,
  updated_at timestamptz, _loaded_at timestamptz, _batch_id text);
create table if not exists raw.shop_order_items (order_item_id bigint primary key, order_id bigint,
  product_id bigint, quantity int, unit_price numeric(10,2), created_at timestamptz, updated_at timestamptz,
  _loaded_at timestamptz, _batch_id text);
create table if not exists raw.crm_contacts (contact_id text primary key, email text, first_name text,
  last_name text, phone text, lifecycle_stage text, email_opt_in boolean, timezone text,
  created_at timestamptz, updated_at timestamptz, _loaded_at timestamptz, _batch_id text, _source_file text);
create table if not exists raw.web_events (message_id text, type text, event text, anonymous_id text,
  user_id text, event_timestamp timestamptz, received_at timestamptz, user_agent text, page_path text,
  properties jsonb, traits jsonb, context jsonb, _file_date date, _source_file text, _loaded_at timestamptz,
  _batch_id text);
create table if not exists raw.esp_events (event_id text, event_type text, profile_id text, email text,
  campaign_id text, message_id text, event_timestamp timestamptz, user_agent text, ip text, url text,
  bounce_type text, _file_date date, _source_file text, _loaded_at timestamptz, _batch_id text);
"""

RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    "shop_customers": (
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "accepts_marketing",
        "created_at",
        "updated_at",
    ),
    "shop_products": ("product_id", "sku", "name", "category", "price", "created_at", "updated_at"),
    "shop_orders": (
        "order_id",
        "customer_id",
        "status",
        "order_total",
        "currency",
        "ordered_at",
        "created_at",
        "updated_at",
    ),
    "shop_order_items": (
        "order_item_id",
        "order_id",
        "product_id",
        "quantity",
        "unit_price",
        "created_at",
        "updated_at",
    ),
    "crm_contacts": (
        "contact_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "lifecycle_stage",
        "email_opt_in",
        "timezone",
        "created_at",
        "updated_at",
    ),
    "web_events": (
        "message_id",
        "type",
        "event",
        "anonymous_id",
        "user_id",
        "event_timestamp",
        "received_at",
        "user_agent",
        "page_path",
        "properties",
        "traits",
        "context",
        "_file_date",
    ),
    "esp_events": (
        "event_id",
        "event_type",
        "profile_id",
        "email",
        "campaign_id",
        "message_id",
        "event_timestamp",
        "user_agent",
        "ip",
        "url",
        "bounce_type",
        "_file_date",
    ),
}
PRIMARY_KEYS = {
    "shop_customers": "customer_id",
    "shop_products": "product_id",
    "shop_orders": "order_id",
    "shop_order_items": "order_item_id",
    "crm_contacts": "contact_id",
}


def new_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(server_url, name)
    url = connection.with_database(server_url, name)
    connection.ensure_schemas(url)
    return url


def create_raw_tables(url: str) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(RAW_DDL)
    conn.close()


def load_raw(
    url: str, table: str, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None = None
) -> None:
    """Land rows like the extraction assets do (upsert by PK for shop/CRM, append for events)."""
    columns = RAW_COLUMNS[table]
    loaded_at = loaded_at or datetime.now(UTC)
    batch = uuid.uuid4().hex[:8]
    values = []
    for row in rows:
        record = []
        for column in columns:
            value = row.get(column)
            if column in ("properties", "traits", "context") and value is not None:
                value = json.dumps(value)
            if column == "_file_date" and value is None:
                value = row["event_timestamp"].date()
            record.append(value)
        values.append((*record, loaded_at, batch))
    if not values:
        return
    column_sql = ", ".join((*columns, "_loaded_at", "_batch_id"))
    conflict = ""
    if table in PRIMARY_KEYS:
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns, "_loaded_at", "_batch_id"))
        conflict = f" on conflict ({PRIMARY_KEYS[table]}) do update set {updates}"
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur, f"insert into raw.{table} ({column_sql}) values %s{conflict}", values
        )
    conn.close()


def query(url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]
    finally:
        conn.close()


def dbt_build(url: str, target_path: Path, *extra: str) -> str:
    return run_dbt(["build", *extra], url, target_path=target_path).stdout


@pytest.fixture(scope="module")
def dbt_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dbt-target")


@pytest.fixture(scope="module")
def hand_world_url(pg_server: str, dbt_target: Path) -> Iterator[str]:
    """A warehouse holding the hand-made world (tests/dbt/hand_world.py) after one `dbt build`."""
    from sendwise_hand_world import load_phase

    url = new_database(pg_server, "dbt_hand")
    create_raw_tables(url)
    load_phase(url, 1)
    dbt_build(url, dbt_target)
    yield url


def ts(text: str) -> datetime:
    return (
        datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)
    )


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
