"""Helpers shared by the synthetic-world tests (small worlds, real Postgres)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path

import psycopg

from dagster_project.synthetic.ownership import FOLDER_MARKER
from dagster_project.synthetic.world import WorldConfig, generate
from dagster_project.warehouse import connection, embedded

START = dt.date(2026, 3, 2)
SHOP_TABLES = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
}


def new_database(server_url: str) -> str:
    name = f"synth_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(server_url, name)
    return connection.with_database(server_url, name)


def make_world(out: Path, shop_url: str, **overrides) -> dict:
    settings = {"customers": 400, "days": 8, "start": START, "seed": 7, **overrides}
    return generate(WorldConfig(out=out, shop_url=shop_url, **settings))


def file_digests(out: Path) -> dict[str, str]:
    """sha256 of every source and ground-truth file (the generator's own state and marker excluded)."""
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and ".generator" not in path.parts and path.name != FOLDER_MARKER
    }


def shop_dump(shop_url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(shop_url) as conn:
        return {
            table: conn.execute(f"select * from shop.{table} order by {key}").fetchall()
            for table, key in SHOP_TABLES.items()
        }
