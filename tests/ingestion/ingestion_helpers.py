"""Small hand-written sources in the contract's shapes, and helpers to materialize the raw assets."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import psycopg

from dagster_project.ingestion.definitions import build_defs
from dagster_project.ingestion.sources import SourcesResource
from dagster_project.settings import get_settings
from dagster_project.warehouse import connection
from dagster_project.warehouse.resource import WarehouseResource

SHOP_DDL = """
create schema if not exists shop;
create table shop.customers (customer_id bigint primary key, email text, first_name text, last_name text,
    phone text, accepts_marketing boolean, created_at timestamptz, updated_at timestamptz);
create table shop.products (product_id bigint primary key, sku text, name text, category text,
    price numeric(10,2), created_at timestamptz, updated_at timestamptz);
create table shop.orders (order_id bigint primary key, customer_id bigint, status text,
    order_total numeric(12,2), currency text, ordered_at timestamptz, created_at timestamptz,
    updated_at timestamptz);
create table shop.order_items (order_item_id bigint primary key, order_id bigint, product_id bigint,
    quantity int, unit_price numeric(10,2), created_at timestamptz, updated_at timestamptz);
"""


def create_shop(shop_url: str, customers: int = 5) -> None:
    with psycopg.connect(connection.libpq_url(shop_url), autocommit=True) as conn:
        conn.execute(SHOP_DDL)
        for i in range(1, customers + 1):
            conn.execute(
                "insert into shop.customers values (%s, %s, 'Ann', 'Lee', null, true, %s, %s)",
                (i, f"c{i}@example.com", "2025-01-01T10:00:00+00", f"2025-01-0{1 + i % 3}T10:00:00+00"),
            )
        conn.execute(
            "insert into shop.products values (1, 'SKU-1', 'Mug', 'home', 12.50, now(), '2025-01-01'),"
            " (2, 'SKU-2', 'Tee', 'apparel', 20.00, now(), '2025-01-01')"
        )
        conn.execute(
            "insert into shop.orders values (10, 1, 'completed', 45.00, 'EUR', '2025-01-02T09:00:00+00',"
            " '2025-01-02T09:00:00+00', '2025-01-02T09:00:00+00')"
        )
        conn.execute(
            "insert into shop.order_items values (100, 10, 1, 2, 12.50, now(), '2025-01-02T09:00:00+00'),"
            " (101, 10, 2, 1, 20.00, now(), '2025-01-02T09:00:00+00')"
        )


def contact(i: int, updated_at: str = "2025-01-01T08:00:00+00:00", **overrides) -> dict:
    record = {
        "id": f"crm-{i:07d}",
        "email": f"c{i}@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": None,
        "lifecycle_stage": "subscriber",
        "email_opt_in": True,
        "timezone": "Europe/Berlin",
        "created_at": "2024-12-01T08:00:00+00:00",
        "updated_at": updated_at,
    }
    record.update(overrides)
    return record


def write_crm_export(source_dir: Path, export_date: str, pages: list[list[dict]]) -> None:
    folder = source_dir / "crm" / "contacts" / export_date
    folder.mkdir(parents=True, exist_ok=True)
    for number, results in enumerate(pages, 1):
        page = {
            "export_id": f"exp-{export_date}",
            "exported_at": f"{export_date}T00:00:00+00:00",
            "page": number,
            "total_pages": len(pages),
            "results": results,
        }
        (folder / f"page-{number:05d}.json").write_text(json.dumps(page))


def web_event(message_id: str, day: str, **overrides) -> dict:
    event = {
        "messageId": message_id,
        "type": "page",
        "anonymousId": "anon-1",
        "userId": "1",
        "timestamp": f"{day}T12:00:00.123+00:00",
        "receivedAt": f"{day}T12:00:01+00:00",
        "properties": {
            "path": "/home",
            "url": "https://shop.example/home",
            "title": "Home",
            "referrer": None,
        },
        "context": {"userAgent": "Mozilla/5.0", "ip": "10.0.0.1", "page": {"path": "/home"}},
    }
    event.update(overrides)
    return event


def esp_event(event_id: str, day: str, **overrides) -> dict:
    event = {
        "event_id": event_id,
        "event_type": "open",
        "profile_id": "esp-1",
        "email": "c1@example.com",
        "campaign_id": "cmp-1",
        "message_id": "msg-1",
        "timestamp": f"{day}T08:30:00+00:00",
        "user_agent": "Mozilla/5.0",
        "ip": "10.0.0.2",
    }
    event.update(overrides)
    return event


def write_jsonl(path: Path, records: list[dict | str]) -> None:
    """Records as JSON lines; a str is written verbatim (to feed malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def write_events(source_dir: Path, day: str, web: list[dict | str], esp: list[dict | str]) -> None:
    write_jsonl(source_dir / "web" / "events" / f"{day}.jsonl", web)
    write_jsonl(source_dir / "esp" / "events" / f"{day}.jsonl", esp)


def materialize_raw(
    days: list[str], instance: dg.DagsterInstance | None = None, raise_on_error: bool = True, **kwargs
) -> list[dg.ExecuteInProcessResult]:
    """Materialize the table assets, then the event assets over the range of `days` in one run."""
    defs = build_defs(get_settings())
    assets = list(defs.assets or [])
    instance = instance or dg.DagsterInstance.ephemeral()
    tables = [a for a in assets if not a.partitions_def]
    events = [a for a in assets if a.partitions_def]
    kwargs.setdefault("resources", {"warehouse": WarehouseResource(), "sources": SourcesResource()})
    results = [dg.materialize(tables, instance=instance, raise_on_error=raise_on_error, **kwargs)]
    if days:
        tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
        results.append(
            dg.materialize(events, instance=instance, tags=tags, raise_on_error=raise_on_error, **kwargs)
        )
    return results


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(connection.libpq_url(url)) as conn:
        return conn.execute(statement, params).fetchall()


def scalar(url: str, statement: str, params: tuple = ()) -> object:
    return query(url, statement, params)[0][0]


def materializations(results: list[dg.ExecuteInProcessResult]) -> dict[str, dict]:
    """Asset key ("raw/web_events") -> metadata values of its materialization in these runs."""
    found = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            found[materialization.asset_key.to_user_string()] = {
                k: v.value for k, v in materialization.metadata.items()
            }
    return found


def raw_counts(url: str) -> dict[str, int]:
    return {table: int(scalar(url, f"select count(*) from raw.{table}")) for table in RAW_TABLES}


RAW_TABLES = (
    "shop_customers", "shop_products", "shop_orders", "shop_order_items", "crm_contacts", "web_events",
    "esp_events",
)  # fmt: skip


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
