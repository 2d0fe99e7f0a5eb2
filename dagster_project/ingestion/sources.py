"""Source connectors (the shop database and the export folder) and the "sources" resource.

The shop is read with SQLAlchemy (any Postgres/MySQL it can reach); when both the shop and the
warehouse are Postgres, a fast path streams `COPY ... TO STDOUT` straight into `COPY ... FROM STDIN`.
File sources are plain folders laid out as SOURCES.md describes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from dagster_project.settings import get_settings
from dagster_project.warehouse import connection

SHOP_SCHEMA = "shop"
RELAY_BYTES = 1 << 20
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    required: bool = False


@dataclass(frozen=True)
class ShopTable:
    """One table of the shop OLTP database, as the source contract describes it."""

    name: str
    """Table name in schema `shop`; the raw table is `raw.shop_<name>`."""
    primary_key: str
    columns: tuple[Column, ...]
    cursor_column: str = "updated_at"

    @property
    def stream(self) -> str:
        return f"shop_{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _timestamps(required_updated_at: bool = True) -> tuple[Column, ...]:
    return (Column("created_at", "timestamptz"), Column("updated_at", "timestamptz", required_updated_at))


SHOP_TABLES: dict[str, ShopTable] = {
    t.name: t
    for t in (
        ShopTable(
            "customers",
            "customer_id",
            (
                Column("customer_id", "bigint", True),
                Column("email", "text"),
                Column("first_name", "text"),
                Column("last_name", "text"),
                Column("phone", "text"),
                Column("accepts_marketing", "boolean"),
                *_timestamps(),
            ),
        ),
        ShopTable(
            "products",
            "product_id",
            (
                Column("product_id", "bigint", True),
                Column("sku", "text"),
                Column("name", "text"),
                Column("category", "text"),
                Column("price", "numeric(10,2)"),
                *_timestamps(),
            ),
        ),
        ShopTable(
            "orders",
            "order_id",
            (
                Column("order_id", "bigint", True),
                Column("customer_id", "bigint"),
                Column("status", "text"),
                Column("order_total", "numeric(12,2)"),
                Column("currency", "text"),
                Column("ordered_at", "timestamptz"),
                *_timestamps(),
            ),
        ),
        ShopTable(
            "order_items",
            "order_item_id",
            (
                Column("order_item_id", "bigint", True),
                Column("order_id", "bigint"),
                Column("product_id", "bigint"),
                Column("quantity", "integer"),
                Column("unit_price", "numeric(10,2)"),
                *_timestamps(),
            ),
        ),
    )
}


class SourcesResource(dg.ConfigurableResource):
    """Where the source systems are: the shop database and the folder of exports and event files.

    Unset fields fall back to the settings (`SHOP_URL`, `SENDWISE_SOURCE_DIR`), and an unset
    `SHOP_URL` to the embedded `sendwise_shop` database of the synthetic world.
    """

    source_dir: str | None = None
    shop_url: str | None = None
    shop_fast_path: bool = True
    """Stream Postgres-to-Postgres with binary COPY; false forces the generic SQLAlchemy reader."""

    def get_source_dir(self) -> Path:
        return Path(self.source_dir).resolve() if self.source_dir else get_settings().source_dir

    def get_shop_url(self) -> str:
        return self.shop_url or connection.shop_url(get_settings())

    def shop_is_postgres(self) -> bool:
        return connection.libpq_url(self.get_shop_url()).startswith(("postgresql://", "postgres://"))


# --- shop: the two readers -------------------------------------------------------------------


def copy_shop_changes(
    shop_url: str,
    table: ShopTable,
    since: object | None,
    target: psycopg.Connection,
    target_table: sql.Composable,
    constants: dict[str, str] | None = None,
    complete_only: bool = False,
) -> int:
    """Fast path: rows changed after `since` streamed from the shop's COPY into `target_table`.

    Casts to the contract's types on the shop side, so the binary formats of both ends match;
    `constants` become extra text columns (e.g. the batch id); `complete_only` leaves out rows
    without a primary key or cursor value. Returns the number of rows copied.
    """
    constants = constants or {}
    source = psycopg.connect(connection.libpq_url(shop_url))
    matching = _columns_of_contract_type(source, table)
    columns: list[sql.Composable] = [
        sql.Identifier(c.name)
        if c.name in matching
        else sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
        for c in table.columns
    ]
    columns += [sql.SQL("{}::text").format(sql.Literal(value)) for value in constants.values()]
    conditions: list[sql.Composable] = []
    if since is not None:
        conditions.append(sql.SQL("{} > {}").format(sql.Identifier(table.cursor_column), sql.Literal(since)))
    if complete_only:
        conditions.append(
            sql.SQL("{} is not null and {} is not null").format(
                sql.Identifier(table.primary_key), sql.Identifier(table.cursor_column)
            )
        )
    select = sql.SQL("select {columns} from {table} where {conditions}").format(
        columns=sql.SQL(", ").join(columns),
        table=sql.Identifier(SHOP_SCHEMA, table.name),
        conditions=sql.SQL(" and ").join(conditions) if conditions else sql.SQL("true"),
    )
    copy_out = sql.SQL("copy ({}) to stdout (format binary)").format(select)
    copy_in = sql.SQL("copy {} ({}) from stdin (format binary)").format(
        target_table, sql.SQL(", ").join(map(sql.Identifier, [*table.column_names, *constants]))
    )
    writer_cursor = target.cursor()
    with (
        source,
        source.cursor().copy(copy_out) as reader,
        writer_cursor.copy(copy_in) as writer,
    ):
        pending = bytearray()  # libpq hands out one row per block: pass them on in ~1 MB writes
        for block in reader:
            pending += block
            if len(pending) >= RELAY_BYTES:
                writer.write(bytes(pending))
                pending.clear()
        if pending:
            writer.write(bytes(pending))
    return writer_cursor.rowcount


# Type OIDs whose binary COPY format is what the contract's type expects (varchar is sent as text).
_BINARY_COMPATIBLE_OIDS = {
    "bigint": {20},
    "integer": {23},
    "text": {25, 1043},
    "boolean": {16},
    "timestamptz": {1184},
}


def _columns_of_contract_type(source: psycopg.Connection, table: ShopTable) -> set[str]:
    """Columns the shop already stores in the contract's type: they need no cast (casts cost time)."""
    query = sql.SQL("select {} from {} where false").format(
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)), sql.Identifier(SHOP_SCHEMA, table.name)
    )
    description = source.execute(query).description or []
    source.rollback()
    matching = set()
    for column, described in zip(table.columns, description, strict=True):
        expected = {1700} if column.pg_type.startswith("numeric") else _BINARY_COMPATIBLE_OIDS[column.pg_type]
        if described.type_code in expected:
            matching.add(column.name)
    return matching


def incomplete_shop_rows(shop_url: str, table: ShopTable) -> list[tuple[object, str, str]]:
    """(primary key, record as JSON, missing column) of rows without a primary key or cursor value."""
    query = sql.SQL(
        "select {pk}, row_to_json(t)::text, case when {pk} is null then {pk_name} else {cursor_name} end "
        "from {table} t where {pk} is null or {cursor} is null"
    ).format(
        pk=sql.Identifier(table.primary_key),
        pk_name=sql.Literal(table.primary_key),
        cursor=sql.Identifier(table.cursor_column),
        cursor_name=sql.Literal(table.cursor_column),
        table=sql.Identifier(SHOP_SCHEMA, table.name),
    )
    with psycopg.connect(connection.libpq_url(shop_url)) as source:
        return source.execute(query).fetchall()


def read_shop_changes(
    shop_url: str, table: ShopTable, since: object | None, batch_size: int = 10_000
) -> Iterator[dict]:
    """Generic path: rows changed after `since`, as dicts, streamed through SQLAlchemy."""
    import sqlalchemy as sa

    engine = connection.create_engine(shop_url)
    source = sa.Table(
        table.name,
        sa.MetaData(),
        *(sa.Column(name) for name in table.column_names),
        schema=SHOP_SCHEMA,
    )
    query = sa.select(*source.columns)
    if since is not None:
        query = query.where(source.c[table.cursor_column] > since)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            for row in result.mappings():
                yield {str(key): value for key, value in row.items()}
    finally:
        engine.dispose()


# --- files ---------------------------------------------------------------------------------

WEB_EVENTS_DIR = Path("web/events")
ESP_EVENTS_DIR = Path("esp/events")
CRM_CONTACTS_DIR = Path("crm/contacts")


def event_file(source_dir: Path, events_dir: Path, day: str) -> Path:
    return source_dir / events_dir / f"{day}.jsonl"


def event_file_dates(source_dir: Path, events_dir: Path) -> list[str]:
    """The file dates (YYYY-MM-DD) of the daily event files present, sorted."""
    folder = source_dir / events_dir
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.jsonl") if _is_date(p.stem))


def crm_export_dates(source_dir: Path) -> list[str]:
    folder = source_dir / CRM_CONTACTS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _is_date(p.name))


def crm_export_pages(source_dir: Path, export_date: str) -> list[Path]:
    return sorted((source_dir / CRM_CONTACTS_DIR / export_date).glob("page-*.json"))


def _is_date(text: str) -> bool:
    if not DATE_PATTERN.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def file_fingerprint(path: Path) -> str:
    """Size and modification time: enough to tell that a file changed since it was loaded."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
