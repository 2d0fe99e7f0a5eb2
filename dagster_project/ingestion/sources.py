"""Source connectors (the shop database and the export folder) and the "sources" resource.

The shop is read with SQLAlchemy (any Postgres/MySQL it can reach); when both the shop and the
warehouse are Postgres, a fast path streams `COPY ... TO STDOUT` straight into `COPY ... FROM STDIN`.
File sources are plain folders laid out as SOURCES.md describes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from dagster_project.settings import get_settings
from dagster_project.warehouse import connection

SHOP_SCHEMA = "shop"
RELAY_BYTES = 1 << 20
FUTURE_TOLERANCE = timedelta(hours=24)
"""How far past now a shop row's cursor may lie; beyond, the row is quarantined (it would poison the mark)."""
TIMESTAMP_RANGE = ("0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00")
"""What both Postgres and Python's datetime hold (in UTC)."""
TEXT_LIMIT = 8_192
EMAIL_LIMIT = 320
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


def text_limit(column: str) -> int:
    return EMAIL_LIMIT if column == "email" else TEXT_LIMIT


def future_reason(table: ShopTable) -> str:
    hours = int(FUTURE_TOLERANCE.total_seconds() // 3600)
    return (
        f"'{table.cursor_column}' is more than {hours} hours in the future: as the incremental mark it "
        "would hide every later change"
    )


def range_reason(column: str) -> str:
    return f"'{column}' is infinity or out of range (in UTC it must lie in years 1 to 9999)"


def length_reason(column: str) -> str:
    return f"'{column}' is over the limit of {text_limit(column)} characters"


def shop_row_problem(
    table: ShopTable, newest: datetime, cast: bool = False, alias: str | None = None
) -> sql.Composable:
    """SQL giving the first reason a shop row cannot be loaded, null when it can (the SQLAlchemy
    path checks the same in Python). `cast`: columns are not yet of the contract's types."""

    def column(c: Column) -> sql.Composable:
        name = sql.Identifier(alias, c.name) if alias else sql.Identifier(c.name)
        return sql.SQL("{}::{}").format(name, sql.SQL(c.pg_type)) if cast else name

    by_name = {c.name: c for c in table.columns}
    checks: list[tuple[sql.Composable, str]] = [
        (sql.SQL("{} is null").format(column(by_name[name])), missing_column_reason(name))
        for name in (table.primary_key, table.cursor_column)
    ]
    low, high = (sql.Literal(v) for v in TIMESTAMP_RANGE)
    for c in table.columns:
        if c.pg_type == "timestamptz":
            checks.append(
                (sql.SQL("{} not between {} and {}").format(column(c), low, high), range_reason(c.name))
            )
        elif c.pg_type == "text":
            limit = sql.Literal(text_limit(c.name))
            checks.append((sql.SQL("length({}) > {}").format(column(c), limit), length_reason(c.name)))
    cursor = column(by_name[table.cursor_column])
    checks.append((sql.SQL("{} > {}").format(cursor, sql.Literal(newest)), future_reason(table)))
    return sql.SQL("case {} end").format(
        sql.SQL(" ").join(
            sql.SQL("when {} then {}").format(condition, sql.Literal(reason)) for condition, reason in checks
        )
    )


def missing_column_reason(column: str) -> str:
    return f"missing required column '{column}'"


def copy_shop_changes(
    shop_url: str,
    table: ShopTable,
    since: object | None,
    target: psycopg.Connection,
    target_table: sql.Composable,
    constants: dict[str, str] | None = None,
    valid_before: datetime | None = None,
) -> int:
    """Fast path: rows changed after `since` streamed from the shop's COPY into `target_table`.

    Casts to the contract's types on the shop side, so the binary formats of both ends match;
    `constants` become extra text columns (e.g. the batch id); `valid_before` leaves out rows that
    `shop_row_problem` rejects (with that as the newest cursor allowed). Returns the rows copied.
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
    if valid_before is not None:
        conditions.append(sql.SQL("{} is null").format(shop_row_problem(table, valid_before, cast=True)))
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


def rejected_shop_rows(shop_url: str, table: ShopTable, newest: datetime) -> list[tuple[object, str, str]]:
    """(primary key, record as JSON, reason) of the rows `copy_shop_changes(valid_before=...)` leaves out."""
    query = sql.SQL(
        "select * from (select {pk}, row_to_json(t)::text, {problem} as problem from {table} t) as checked "
        "where problem is not null"
    ).format(
        pk=sql.Identifier(table.primary_key),
        problem=shop_row_problem(table, newest, cast=True, alias="t"),
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
    if engine.dialect.driver == "psycopg2":
        sa.event.listen(engine, "connect", _timestamps_out_of_range_as_text)
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


def _timestamps_out_of_range_as_text(dbapi_connection: object, _record: object) -> None:
    """psycopg2 reads 'infinity' as datetime.max and fails the whole read on year 10000: give those
    values as their text instead, so the row is quarantined (shop_row rejects the text)."""
    import psycopg2.extensions as pg

    for default in (pg.PYDATETIMETZ, pg.PYDATETIME):

        def cast(value: str | None, cursor: object, default: object = default) -> object:
            if value is None or value in ("infinity", "-infinity"):
                return value
            try:
                return default(value, cursor)  # type: ignore[operator]
            except ValueError:
                return value

        pg.register_type(pg.new_type(default.values, f"SENDWISE_{default.name}", cast), dbapi_connection)


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
