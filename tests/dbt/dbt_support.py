"""Fixtures for the dbt tests: raw tables from the ingestion's DDL, a hand-made world, one shared build."""

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
from field_tokens import protect_rows, reveal

from dagster_project.dbt.project import run_dbt
from dagster_project.ingestion import loaders, parsers, protection
from dagster_project.ingestion.sources import SHOP_TABLES
from dagster_project.warehouse import connection, embedded

UTC = UTC


# The raw layer is the ingestion's own contract: the same DDL, columns and keys the extraction assets use.
def _extra(table: str) -> tuple[str, ...]:
    return tuple(name for name, _ in protection.extra_columns(table))


RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    **{
        table.stream: (*(c.name for c in table.columns), *_extra(table.stream))
        for table in SHOP_TABLES.values()
    },
    "crm_contacts": (*parsers.CRM_CONTACT_COLUMNS, *_extra("crm_contacts")),
    **{
        stream.table: (
            *(name for name, _ in stream.columns),
            *_extra(stream.table),
            "_file_date",
            "_source_file",
            "_source_line",
        )
        for stream in loaders.EVENT_STREAMS.values()
    },
}
JSON_COLUMNS = ("properties", "traits", "context", "email_facts", "phone_facts")
PRIMARY_KEYS = {table.stream: table.primary_key for table in SHOP_TABLES.values()} | {
    "crm_contacts": "contact_id"
}


def new_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(server_url, name)
    url = connection.with_database(server_url, name)
    connection.ensure_schemas(url)
    return url


def create_raw_tables(url: str) -> None:
    with loaders.connect(url) as conn:
        loaders.ensure_tables(conn)


def load_raw(
    url: str, table: str, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None = None
) -> None:
    """Land rows like the extraction assets do (upsert by PK for shop/CRM, append for events), emails
    and phones tokenised and encrypted as the loaders do."""
    columns = RAW_COLUMNS[table]
    rows = protect_rows(url, table, rows)
    loaded_at = loaded_at or datetime.now(UTC)
    batch = uuid.uuid4().hex[:8]
    values = []
    for row in rows:
        record = []
        for column in columns:
            value = row.get(column)
            if column in JSON_COLUMNS and value is not None:
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
    """Rows as dicts; email/phone tokens read back as their plaintexts (field_tokens.reveal)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return reveal(url, [dict(row) for row in cur.fetchall()])
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
