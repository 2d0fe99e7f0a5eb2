"""Loading into the raw layer: DDL, binary COPY, quarantine, high-water marks, one transaction per load.

Each load runs in a single transaction: rows are COPYed (into a staging table for upserts, or straight
into the raw table after deleting the partition for daily event files), bad records go to
ops.quarantine, then ops.load_state and ops.load_log are written, then it commits. A failure anywhere
rolls all of it back, so the previous state stays and the next run resumes from the same mark; the
failure itself is logged in ops.load_log in a separate transaction. The upserted tables (shop, CRM)
are loaded by `upserts` with this module's bookkeeping.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from dagster_project.ingestion import parsers, protection
from dagster_project.ingestion.sources import (
    ESP_EVENTS_DIR,
    SHOP_TABLES,
    WEB_EVENTS_DIR,
    event_file,
    file_fingerprint,
)
from dagster_project.privacy.masking import mask_text, mask_value
from dagster_project.privacy.suppression import drop_suppressed_records
from dagster_project.warehouse import connection

log = logging.getLogger(__name__)

# psycopg's binary type names for the contract's SQL types.
BINARY_TYPES = {
    "bigint": "int8",
    "integer": "int4",
    "text": "text",
    "boolean": "bool",
    "timestamptz": "timestamptz",
    "jsonb": "jsonb",
    "date": "date",
}


def binary_type(pg_type: str) -> str:
    return "numeric" if pg_type.startswith("numeric") else BINARY_TYPES[pg_type]


@dataclass(frozen=True)
class EventStream:
    """A daily file stream: one JSONL file per file date, replaced as a whole when reloaded."""

    name: str
    folder: Path
    columns: tuple[tuple[str, str], ...]
    to_row: Callable[[Any], tuple]

    @property
    def table(self) -> str:
        return self.name


WEB_EVENTS = EventStream(
    "web_events",
    WEB_EVENTS_DIR,
    tuple(
        zip(
            parsers.WEB_EVENT_COLUMNS,
            ("text",) * 5 + ("timestamptz",) * 2 + ("text",) * 2 + ("jsonb",) * 3,
            strict=True,
        )
    ),
    parsers.web_event_row,
)
ESP_EVENTS = EventStream(
    "esp_events",
    ESP_EVENTS_DIR,
    tuple(
        zip(
            parsers.ESP_EVENT_COLUMNS,
            ("text",) * 6 + ("timestamptz",) + ("text",) * 4,
            strict=True,
        )
    ),
    parsers.esp_event_row,
)
EVENT_STREAMS = {s.name: s for s in (WEB_EVENTS, ESP_EVENTS)}
CRM_CONTACT_TYPES = ("text",) * 6 + ("boolean", "text", "timestamptz", "timestamptz")
EVENT_FILE_COLUMNS = (
    ("_source_line", "bigint"), ("_file_date", "date"), ("_source_file", "text"), ("_batch_id", "text"),
)  # fmt: skip

OPS_DDL = """
create table if not exists ops.load_state (
    stream text not null,
    partition_key text not null default '',
    high_water_mark text,
    fingerprint text,
    batch_id text,
    updated_at timestamptz not null default now(),
    primary key (stream, partition_key)
);
create table if not exists ops.load_log (
    batch_id text primary key,
    stream text not null,
    partition_key text,
    received bigint not null default 0,
    loaded bigint not null default 0,
    quarantined bigint not null default 0,
    written bigint not null default 0,
    high_water_mark text,
    status text not null,
    error text,
    started_at timestamptz not null,
    finished_at timestamptz not null
);
create table if not exists ops.quarantine (
    stream text not null,
    partition_key text,
    source_location text not null,
    record text,
    reason text not null,
    batch_id text not null,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_stream_partition_idx on ops.quarantine (stream, partition_key);
alter table ops.quarantine add column if not exists source_offset bigint;
do $$ begin  -- logs created before privacy suppression (checked first: ALTER locks the table)
    if not exists (select from information_schema.columns
                   where table_schema = 'ops' and table_name = 'load_log' and column_name = 'suppressed') then
        alter table ops.load_log add column suppressed bigint not null default 0;
    end if;
end $$;
"""


def raw_ddl() -> list[sql.Composable]:
    statements: list[sql.Composable] = []
    for table in SHOP_TABLES.values():
        statements.append(
            _create_table(
                table.stream,
                [(c.name, c.pg_type) for c in table.columns] + protection.extra_columns(table.stream),
                extra=[("_loaded_at", "timestamptz not null default now()"), ("_batch_id", "text")],
                primary_key=table.primary_key,
            )
        )
        statements.append(_raw_index(table.stream))  # int_customers__touched_keys reads the new rows
    statements.append(
        _create_table(
            "crm_contacts",
            list(zip(parsers.CRM_CONTACT_COLUMNS, CRM_CONTACT_TYPES, strict=True))
            + protection.extra_columns("crm_contacts"),
            extra=[
                ("_source_file", "text"),
                ("_loaded_at", "timestamptz not null default now()"),
                ("_batch_id", "text"),
            ],
            primary_key="contact_id",
        )
    )
    for stream in EVENT_STREAMS.values():
        statements.append(
            _create_table(
                stream.table,
                list(stream.columns) + protection.extra_columns(stream.table),
                extra=[
                    ("_file_date", "date not null"),
                    ("_source_file", "text"),
                    ("_source_line", "bigint"),
                    ("_loaded_at", "timestamptz not null default now()"),
                    ("_batch_id", "text"),
                ],
            )
        )
        statements.append(  # warehouses created before _source_line existed
            sql.SQL("alter table raw.{} add column if not exists _source_line bigint").format(
                sql.Identifier(stream.table)
            )
        )
        for column in ("_file_date", "_loaded_at"):  # the staging and the daily quality checks' filters
            statements.append(_raw_index(stream.table, column))
    return statements


def _raw_index(table: str, column: str = "_loaded_at") -> sql.Composable:
    return sql.SQL("create index if not exists {} on raw.{} ({})").format(
        sql.Identifier(f"{table}{column}_idx"), sql.Identifier(table), sql.Identifier(column)
    )


def _create_table(
    name: str, columns: list[tuple[str, str]], extra: list[tuple[str, str]], primary_key: str | None = None
) -> sql.Composable:
    definitions = [
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(pg_type))
        for column, pg_type in [*columns, *extra]
    ]
    if primary_key:
        definitions.append(sql.SQL("primary key ({})").format(sql.Identifier(primary_key)))
    return sql.SQL("create table if not exists raw.{} ({})").format(
        sql.Identifier(name), sql.SQL(", ").join(definitions)
    )


def ensure_tables(conn: psycopg.Connection) -> dict[str, int]:
    """Create the raw and ops tables if missing (serialised: assets may run in parallel); returns the
    rows of pre-encryption tables converted in place (empty once converted)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('sendwise.ingestion.ddl'))")
        conn.execute("create schema if not exists raw")
        conn.execute("create schema if not exists ops")
        conn.execute(OPS_DDL)
        converted = protection.convert_plaintext(conn)  # before the DDL creates missing columns
        for statement in raw_ddl():
            conn.execute(statement)
    for table, rows in converted.items():
        if rows:
            log.warning("raw.%s: %s plaintext emails/phones tokenised and encrypted in place", table, rows)
    return converted


ANALYZE_AFTER_ROWS = 1_000
"""A load writing at least this many rows (or a tenth of the table) refreshes its statistics."""


def refresh_statistics(conn: psycopg.Connection, table: str, written: int) -> bool:
    """ANALYZE raw.`table` after a load that wrote many rows (True if it did).

    The new rows' `_loaded_at` lies past the histogram of the last ANALYZE, so until autovacuum gets
    to the table the planner estimates one row for "loaded since X". Seen at 100k customers: the GX
    uniqueness query over a day's 82k new web events ran as a nested loop for 23-45 s instead of 1 s,
    and dbt's incremental staging reads the same range. ANALYZE samples a fixed number of rows (about
    1 s here at 750k events), so it costs the same whatever the table's size.
    """
    reltuples = conn.execute(
        "select greatest(reltuples, 0) from pg_class where oid = to_regclass(%s)", (f"raw.{table}",)
    ).fetchone()
    if reltuples is None or written < min(ANALYZE_AFTER_ROWS, max(reltuples[0] / 10, 1)):
        return False
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier("raw", table)))
    return True


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection (each load opens its own transaction) dumping JSON with orjson."""
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        set_json_dumps(orjson.dumps, context=conn)
        yield conn


# --- bookkeeping -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    stream: str
    batch_id: str
    partition_key: str = ""
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    suppressed: int = 0
    """Records about people under a privacy request, dropped after landing (received = loaded +
    quarantined + suppressed)."""
    written: int = 0
    """Raw rows inserted or changed (an older version or a duplicate within a batch is not written)."""
    high_water_mark: str | None = None
    status: str = "success"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    started_clock: float = field(default_factory=time.perf_counter)
    duration_s: float = 0.0
    source_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parts: int = 1
    """Files (days, pages) or tables this load read; `failures` lists those that failed."""
    failures: list[str] = field(default_factory=list)
    """Parts (a page, an export, the load itself) that failed, each as "part: first line of the error"."""

    def finish(self) -> None:
        self.finished_at = datetime.now(UTC)
        self.duration_s = time.perf_counter() - self.started_clock

    @property
    def rows_per_second(self) -> float:
        return self.received / self.duration_s if self.duration_s > 0 else 0.0


def new_batch_id(stream: str, partition_key: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return "-".join(p for p in (stream, partition_key, stamp, uuid.uuid4().hex[:8]) if p)


@dataclass(frozen=True)
class LoadState:
    high_water_mark: str | None = None
    fingerprint: str | None = None


def get_state(conn: psycopg.Connection, stream: str, partition_key: str = "") -> LoadState:
    row = conn.execute(
        "select high_water_mark, fingerprint from ops.load_state where stream = %s and partition_key = %s",
        (stream, partition_key),
    ).fetchone()
    return LoadState(*row) if row else LoadState()


def lock_stream(conn: psycopg.Connection, stream: str, partition_key: str = "") -> None:
    """Serialise loads of the same stream (and day) until the transaction ends: two runs loading one
    day at once would otherwise both delete, then both insert."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"sendwise.load:{stream}:{partition_key}",))


def record_load(conn: psycopg.Connection, result: LoadResult, fingerprint: str | None = None) -> None:
    """Drop suppressed records, move the high-water mark and log the load (in the load's transaction)."""
    if result.status in ("success", "partial"):
        drop_suppressed(conn, result)
    result.finish()
    if result.status in ("success", "partial"):
        conn.execute(
            """
            insert into ops.load_state (stream, partition_key, high_water_mark, fingerprint, batch_id)
            values (%s, %s, %s, %s, %s)
            on conflict (stream, partition_key) do update set
                high_water_mark = coalesce(excluded.high_water_mark, load_state.high_water_mark),
                fingerprint = excluded.fingerprint, batch_id = excluded.batch_id, updated_at = now()
            """,
            (result.stream, result.partition_key, result.high_water_mark, fingerprint, result.batch_id),
        )
    _log(conn, result, error="; ".join(result.failures)[:2_000] or None)


def drop_suppressed(conn: psycopg.Connection, result: LoadResult) -> None:
    """Records of the batch about suppressed or deleted people go; they count as suppressed."""
    result.suppressed = drop_suppressed_records(conn, result.stream, result.batch_id)
    result.loaded -= result.suppressed
    result.written = max(result.written - result.suppressed, 0)


def _log(conn: psycopg.Connection, result: LoadResult, error: str | None) -> None:
    conn.execute(
        """
        insert into ops.load_log (batch_id, stream, partition_key, received, loaded, quarantined,
            suppressed, written, high_water_mark, status, error, started_at, finished_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            result.batch_id, result.stream, result.partition_key, result.received, result.loaded,
            result.quarantined, result.suppressed, result.written, result.high_water_mark, result.status,
            error, result.started_at, result.finished_at or datetime.now(UTC),
        ),
    )  # fmt: skip


@contextmanager
def logged_failure(conn: psycopg.Connection, result: LoadResult) -> Iterator[None]:
    """On an exception (after the load's transaction rolled back), log the failed load and re-raise.

    The logged counts and mark are cleared: the rows counted so far were rolled back with the load.
    """
    try:
        yield
    except BaseException as error:
        result.finish()
        result.status = "failed"
        result.received = result.loaded = result.quarantined = result.written = 0
        result.high_water_mark = None
        result.failures = [f"{result.partition_key or result.stream}: {first_line(error)}"]
        try:
            with conn.transaction():
                _log(conn, result, error=f"{type(error).__name__}: {error}"[:2_000])
        except psycopg.Error:
            pass  # the connection itself is gone; the original error matters more
        raise


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:500]


def load_event_partitions(
    conn: psycopg.Connection, stream: EventStream, source_dir: Path, days: list[str], force: bool = False
) -> list[LoadResult]:
    """Each day in its own transaction: a day that fails is logged (status failed) and the later days
    are still loaded; its result names the error."""
    results = []
    for day in days:
        try:
            results.append(load_event_partition(conn, stream, source_dir, day, force=force))
        except Exception as error:
            failed = LoadResult(stream.name, "", partition_key=day, status="failed")
            failed.failures.append(f"{day}: {first_line(error)}")
            failed.finish()
            results.append(failed)
    return results


def write_quarantine(
    conn: psycopg.Connection, stream: str, partition_key: str, batch_id: str, rejections: parsers.Rejections
) -> None:
    if not rejections.items:
        return
    with conn.cursor().copy(
        "copy ops.quarantine (stream, partition_key, source_location, source_offset, record, reason,"
        " batch_id) from stdin"
    ) as copy:
        for item in rejections.items:
            copy.write_row(
                (stream, partition_key, item.location, item.offset, item.record, item.reason, batch_id)
            )


def copy_statement(table: sql.Composable, columns: list[str]) -> sql.Composable:
    return sql.SQL("copy {} ({}) from stdin (format binary)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns))
    )


# --- daily event files -----------------------------------------------------------------------


def load_event_partition(
    conn: psycopg.Connection, stream: EventStream, source_dir: Path, day: str, force: bool = False
) -> LoadResult:
    """Replace the rows of file date `day` with the file's contents, in one transaction.

    An unchanged file (same size and mtime as last loaded) is skipped unless `force`; a missing
    file loads nothing and leaves what is there.
    """
    file_date = date.fromisoformat(day)
    result = LoadResult(stream.name, new_batch_id(stream.name, day), partition_key=day)
    path = event_file(source_dir, stream.folder, day)
    relative = str(path.relative_to(source_dir))
    with logged_failure(conn, result):
        if not path.exists():
            result.status = "missing"
            result.notes.append(f"no file {relative}")
            with conn.transaction():
                record_load(conn, result)
            return result
        fingerprint = file_fingerprint(path)
        if not force and get_state(conn, stream.name, day).fingerprint == fingerprint:
            result.status = "unchanged"
            result.high_water_mark = day
            result.notes.append(f"{relative} already loaded")
            with conn.transaction():
                record_load(conn, result)
            return result
        result.source_files.append(relative)
        rejections = parsers.Rejections()
        table = sql.Identifier("raw", stream.table)
        columns = [*stream.columns, *protection.extra_columns(stream.table), *EVENT_FILE_COLUMNS]
        protect = protection.tuple_protector(conn, stream.table, [c for c, _ in stream.columns])
        tail = (file_date, relative, result.batch_id)
        with conn.transaction():
            lock_stream(conn, stream.name, day)
            conn.execute(sql.SQL("delete from {} where _file_date = %s").format(table), (file_date,))
            conn.execute(
                "delete from ops.quarantine where stream = %s and partition_key = %s", (stream.name, day)
            )
            cursor = conn.cursor()
            with cursor.copy(copy_statement(table, [c for c, _ in columns])) as copy:
                copy.set_types([binary_type(t) for _, t in columns])
                write_row = copy.write_row
                for line_number, row in parsers.read_jsonl(path, relative, stream.to_row, rejections):
                    write_row((*protect(row), line_number, *tail))
            result.loaded = result.written = cursor.rowcount
            result.quarantined = len(rejections)
            result.received = result.loaded + result.quarantined
            write_quarantine(conn, stream.name, day, result.batch_id, rejections)
            result.high_water_mark = day
            record_load(conn, result, fingerprint=fingerprint)
            conn.execute(
                """
                insert into ops.load_state (stream, partition_key, high_water_mark, batch_id)
                values (%s, '', %s, %s)
                on conflict (stream, partition_key) do update set
                    high_water_mark = greatest(load_state.high_water_mark, excluded.high_water_mark),
                    batch_id = excluded.batch_id, updated_at = now()
                """,
                (stream.name, day, result.batch_id),
            )
    return result


# --- previews for asset metadata -------------------------------------------------------------


def batch_preview(conn: psycopg.Connection, table: str, batch_ids: list[str], limit: int = 5) -> str:
    """A markdown table of a few rows landed by these batches."""
    cursor = conn.execute(
        sql.SQL("select * from raw.{} where _batch_id = any(%s) limit %s").format(sql.Identifier(table)),
        (batch_ids, limit),
    )
    names = [d.name for d in cursor.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if not rows:
        return "_no rows landed in this run_"
    protected = protection.PROTECTED.get(table, ())
    shown = [n for n in names if not any(n in (f"{c}_encrypted", f"{c}_facts") for c in protected)]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:  # masked: the Dagster UI shows this to anyone who can reach it
        for column in protected:  # an email/phone as the loader masked it, not its token
            row[column] = (row.get(f"{column}_facts") or {}).get("masked")
        cells = (_cell(row[name] if name in protected else mask_value(name, row[name])) for name in shown)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quarantine_sample(conn: psycopg.Connection, batch_ids: list[str], limit: int = 10) -> str:
    """A markdown table of where and why records of these batches were quarantined."""
    rows = conn.execute(
        "select source_location, reason from ops.quarantine where batch_id = any(%s) "
        "order by source_location limit %s",
        (batch_ids, limit),
    ).fetchall()
    lines = ["| source location | reason |", "|---|---|"]
    lines += [f"| {_cell(mask_text(at), 100)} | {_cell(mask_text(reason), 160)} |" for at, reason in rows]
    return "\n".join(lines)


def _cell(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
    text = orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."
