"""Loading the upserted raw tables: shop tables by high-water mark, CRM exports by folder.

Both keep the newest version per primary key (by updated_at), so a source may resend rows and
exports may be applied in any order. Bookkeeping (load log, state, quarantine) is `loaders`'.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

from dagster_project.ingestion import loaders, parsers, protection
from dagster_project.ingestion.sources import (
    FUTURE_TOLERANCE,
    ShopTable,
    copy_shop_changes,
    crm_export_dates,
    crm_export_pages,
    read_shop_changes,
    rejected_shop_rows,
    shop_row_problem,
)


def _create_staging(conn: psycopg.Connection, name: str, columns: list[tuple[str, str]]) -> sql.Identifier:
    staging = sql.Identifier(name)
    conn.execute(
        sql.SQL("create temp table {} ({}) on commit drop").format(
            staging,
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns),
        )
    )
    return staging


def _upsert(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    target: str,
    columns: list[str],
    primary_key: str,
    batch_columns: dict[str, str | None],
    where: sql.Composable | None = None,
) -> int:
    """Newest version per key (by updated_at) from staging into raw.<target>; returns rows written."""
    names = [*columns, *batch_columns]
    query = sql.SQL(
        """
        insert into raw.{target} ({names})
        select distinct on ({pk}) {columns}, {batch_values} from {staging}
        where {where}
        order by {pk}, updated_at desc
        on conflict ({pk}) do update set {updates}, _loaded_at = now()
        where raw.{target}.updated_at is null or raw.{target}.updated_at <= excluded.updated_at
        """
    ).format(
        target=sql.Identifier(target),
        names=sql.SQL(", ").join(map(sql.Identifier, names)),
        pk=sql.Identifier(primary_key),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        batch_values=sql.SQL(", ").join(sql.Literal(v) for v in batch_columns.values()),
        staging=staging,
        where=where or sql.SQL("true"),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in names if n != primary_key
        ),
    )
    return conn.execute(query).rowcount


def load_shop_table(
    conn: psycopg.Connection, shop_url: str, table: ShopTable, fast_path: bool = True
) -> loaders.LoadResult:
    """Rows of shop.<table> changed since the high-water mark (updated_at), upserted by primary key.

    The first load into an empty raw table (fast path) COPYs straight into it; later loads go
    through a staging table and an upsert that keeps the newest version per key. Rows with an
    updated_at past now + FUTURE_TOLERANCE are quarantined, so the mark never passes that.
    """
    result = loaders.LoadResult(table.stream, loaders.new_batch_id(table.stream))
    newest_allowed = datetime.now(UTC) + FUTURE_TOLERANCE
    raw_table = sql.Identifier("raw", table.stream)
    with loaders.logged_failure(conn, result), conn.transaction():
        loaders.lock_stream(conn, table.stream)
        mark = loaders.get_state(conn, table.stream).high_water_mark
        since = datetime.fromisoformat(mark) if mark else None
        if since is not None and since > newest_allowed:
            since = _newest_cursor(conn, raw_table, newest_allowed)
            result.notes.append(f"mark {mark} was past now + {FUTURE_TOLERANCE}: reset to {since}")
        loaded_directly = False
        # a table with emails/phones goes through staging: they are protected there, never in raw
        if (
            fast_path
            and since is None
            and table.stream not in protection.PROTECTED
            and _is_empty(conn, raw_table)
        ):
            loaded_directly = _copy_shop_table_directly(conn, shop_url, table, newest_allowed, result)
        if not loaded_directly:
            _load_shop_changes_through_staging(
                conn, shop_url, table, since, fast_path, newest_allowed, result
            )
        _replace_earlier_quarantine(conn, table, result.batch_id)
        newest = conn.execute(
            sql.SQL("select max(updated_at) from {} where _batch_id = %s").format(raw_table),
            (result.batch_id,),
        ).fetchone()[0]
        result.high_water_mark = newest.isoformat() if newest else since.isoformat() if since else mark
        loaders.record_load(conn, result)
    return result


def _newest_cursor(
    conn: psycopg.Connection, table: sql.Composable, newest_allowed: datetime
) -> datetime | None:
    return conn.execute(
        sql.SQL("select max(updated_at) from {} where updated_at <= %s").format(table), (newest_allowed,)
    ).fetchone()[0]


def _replace_earlier_quarantine(conn: psycopg.Connection, table: ShopTable, batch_id: str) -> None:
    """A shop row quarantined again (same key: it is still bad and still past the mark) replaces its
    earlier entry instead of adding one; rows without a key cannot be matched and stay."""
    conn.execute(
        """
        delete from ops.quarantine earlier
        where earlier.stream = %(stream)s and earlier.batch_id <> %(batch)s
          and earlier.source_location not like '%%=null'
          and earlier.source_location in (
              select source_location from ops.quarantine where stream = %(stream)s and batch_id = %(batch)s
          )
        """,
        {"stream": table.stream, "batch": batch_id},
    )


def _is_empty(conn: psycopg.Connection, table: sql.Composable) -> bool:
    return conn.execute(sql.SQL("select not exists (select from {})").format(table)).fetchone()[0]


def _copy_shop_table_directly(
    conn: psycopg.Connection,
    shop_url: str,
    table: ShopTable,
    newest_allowed: datetime,
    result: loaders.LoadResult,
) -> bool:
    """COPY the whole shop table into its empty raw table; false (nothing done) on duplicate keys."""
    try:
        with conn.transaction():  # a savepoint: duplicate keys in the source fall back to staging
            result.loaded = result.written = copy_shop_changes(
                shop_url, table, None, conn, sql.Identifier("raw", table.stream),
                constants={"_batch_id": result.batch_id}, valid_before=newest_allowed,
            )  # fmt: skip
            rejections = parsers.Rejections()
            for key, record, reason in rejected_shop_rows(shop_url, table, newest_allowed):
                rejections.add(_shop_location(table, key), record, reason)
            loaders.write_quarantine(conn, table.stream, "", result.batch_id, rejections)
    except psycopg.errors.UniqueViolation:
        result.notes.append(f"shop.{table.name} has duplicate {table.primary_key}s: newest version kept")
        return False
    result.quarantined = len(rejections)
    result.received = result.loaded + result.quarantined
    return True


def _shop_location(table: ShopTable, key: object) -> str:
    return f"shop.{table.name}:{table.primary_key}={key if key is not None else 'null'}"


def _load_shop_changes_through_staging(
    conn: psycopg.Connection,
    shop_url: str,
    table: ShopTable,
    since: datetime | None,
    fast_path: bool,
    newest_allowed: datetime,
    result: loaders.LoadResult,
) -> None:
    staging_name = f"_staging_{table.stream}"
    staging = _create_staging(conn, staging_name, [(c.name, c.pg_type) for c in table.columns])
    if fast_path:
        result.received = copy_shop_changes(shop_url, table, since, conn, staging)
        result.quarantined = _quarantine_rejected_shop_rows(
            conn, table, staging, newest_allowed, result.batch_id
        )
    else:
        rejections = parsers.Rejections()
        cursor = conn.cursor()
        with cursor.copy(loaders.copy_statement(staging, table.column_names)) as copy:
            copy.set_types([loaders.binary_type(c.pg_type) for c in table.columns])
            for record in read_shop_changes(shop_url, table, since):
                try:
                    copy.write_row(parsers.shop_row(table, record, newest_allowed))
                except parsers.RecordError as error:
                    rejections.add(
                        _shop_location(table, record.get(table.primary_key)),
                        orjson.dumps(record, default=str),
                        str(error),
                    )
        result.quarantined = len(rejections)
        result.received = cursor.rowcount + result.quarantined
        loaders.write_quarantine(conn, table.stream, "", result.batch_id, rejections)
    result.loaded = result.received - result.quarantined
    valid = sql.SQL("{} is null").format(shop_row_problem(table, newest_allowed))
    note = f"shop.{table.name} has duplicate {table.primary_key}s: newest version kept"
    if note not in result.notes and _has_duplicate_keys(conn, staging, table.primary_key, valid):
        result.notes.append(note)
    protection.protect_staging(conn, staging, table.stream, where=valid)
    columns = [*table.column_names, *(name for name, _ in protection.extra_columns(table.stream))]
    result.written = _upsert(
        conn, staging, table.stream, columns, table.primary_key, {"_batch_id": result.batch_id}, where=valid,
    )  # fmt: skip


def _has_duplicate_keys(
    conn: psycopg.Connection, staging: sql.Identifier, primary_key: str, valid: sql.Composable
) -> bool:
    return conn.execute(
        sql.SQL("select count(*) > count(distinct {pk}) from {staging} where {valid}").format(
            pk=sql.Identifier(primary_key), staging=staging, valid=valid
        )
    ).fetchone()[0]


def _quarantine_rejected_shop_rows(
    conn: psycopg.Connection,
    table: ShopTable,
    staging: sql.Identifier,
    newest_allowed: datetime,
    batch_id: str,
) -> int:
    """Rows the fast path copied into staging that `shop_row_problem` rejects go to quarantine."""
    pk = sql.Identifier(table.primary_key)
    return conn.execute(
        sql.SQL(
            """
            insert into ops.quarantine (stream, partition_key, source_location, record, reason, batch_id)
            select {stream}, '', {location} || coalesce(s.{pk}::text, 'null'),
                left(row_to_json(s)::text, {preview}), checked.problem, {batch_id}
            from {staging} s, lateral (select {problem} as problem) checked
            where checked.problem is not null
            """
        ).format(
            stream=sql.Literal(table.stream),
            location=sql.Literal(f"shop.{table.name}:{table.primary_key}="),
            pk=pk,
            preview=sql.Literal(parsers.RECORD_PREVIEW_CHARS),
            problem=shop_row_problem(table, newest_allowed, alias="s"),
            batch_id=sql.Literal(batch_id),
            staging=staging,
        )
    ).rowcount


def load_crm_contacts(conn: psycopg.Connection, source_dir: Path) -> loaders.LoadResult:
    """CRM export folders not loaded yet, upserted by contact id (the newest `updated_at` wins, so
    exports may be applied in any order).

    Exports newer than the high-water mark are applied in date order, each in its own savepoint: one
    that fails, or holds a page that cannot be read, leaves the others loaded (status `partial`) and
    keeps the mark before it, so it is read again on the next run; exports that did load completely
    past it are remembered (ops.load_state, partition_key = export date) and not read again. An
    export whose page count does not match `total_pages` (still being written) stops the batch
    before it, so it is picked up complete by a later run.
    """
    result = loaders.LoadResult("crm_contacts", loaders.new_batch_id("crm_contacts"), parts=0)
    with loaders.logged_failure(conn, result), conn.transaction():
        loaders.lock_stream(conn, result.stream)
        mark = loaders.get_state(conn, result.stream).high_water_mark
        complete = _complete_crm_exports(conn)
        dates = crm_export_dates(source_dir)
        exports = [d for d in dates if (mark is None or d > mark) and d not in complete]
        columns = [*zip(parsers.CRM_CONTACT_COLUMNS, loaders.CRM_CONTACT_TYPES, strict=True)]
        staging = _create_staging(conn, "_staging_crm_contacts", [*columns, ("_source_file", "text")])
        loaded_through, all_complete = mark, True
        for export_date in exports:
            pages = crm_export_pages(source_dir, export_date)
            rejections = parsers.Rejections()
            page_rows = []
            for page in pages:
                relative = str(page.relative_to(source_dir))
                rows, header = parsers.read_crm_page(page, relative, rejections)
                page_rows.append((relative, rows, header))
            expected = next((h.get("total_pages") for _, _, h in page_rows if h), None)
            if not pages or (isinstance(expected, int) and expected != len(pages)):
                result.notes.append(
                    f"export {export_date} incomplete ({len(pages)} of {expected} pages): stopped before it"
                )
                break
            result.parts += len(pages)
            failed = [f"{relative}: {reason}" for relative, _, header in page_rows if not header
                      for reason in _page_reasons(rejections, relative)]  # fmt: skip
            try:
                with conn.transaction():  # a savepoint: this export fails alone
                    _load_crm_export(conn, staging, export_date, page_rows, rejections, result)
            except psycopg.Error as error:
                failed.append(f"export {export_date}: {loaders.first_line(error)}")
            result.failures += failed
            if failed:
                all_complete = False
            elif all_complete:
                loaded_through = export_date
            else:
                _remember_complete_crm_export(conn, export_date, result.batch_id)
                complete.add(export_date)
        for export_date in dates:  # past exports loaded completely on an earlier run
            if loaded_through is None or export_date > loaded_through:
                if export_date not in complete:
                    break
                loaded_through = export_date
        conn.execute(
            "delete from ops.load_state where stream = 'crm_contacts' and partition_key <> '' "
            "and partition_key <= %s",
            (loaded_through or "",),
        )
        result.high_water_mark = loaded_through
        result.status = "partial" if result.failures else "success"
        loaders.record_load(conn, result)
    return result


def _page_reasons(rejections: parsers.Rejections, location: str) -> list[str]:
    return [item.reason for item in rejections.items if item.location == location]


def _complete_crm_exports(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "select partition_key from ops.load_state where stream = 'crm_contacts' and partition_key <> ''"
    ).fetchall()
    return {row[0] for row in rows}


def _remember_complete_crm_export(conn: psycopg.Connection, export_date: str, batch_id: str) -> None:
    conn.execute(
        "insert into ops.load_state (stream, partition_key, high_water_mark, batch_id) "
        "values ('crm_contacts', %s, %s, %s) on conflict (stream, partition_key) do nothing",
        (export_date, export_date, batch_id),
    )


def _load_crm_export(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    export_date: str,
    page_rows: list[tuple[str, list[tuple], dict]],
    rejections: parsers.Rejections,
    result: loaders.LoadResult,
) -> None:
    """One export's contacts upserted, its quarantine replacing what an earlier read of it left."""
    columns = [*parsers.CRM_CONTACT_COLUMNS, "_source_file"]
    conn.execute(sql.SQL("truncate {}").format(staging))
    cursor = conn.cursor()
    with cursor.copy(loaders.copy_statement(staging, columns)) as copy:
        copy.set_types([loaders.binary_type(t) for t in (*loaders.CRM_CONTACT_TYPES, "text")])
        for relative, rows, _ in page_rows:
            for row in rows:
                copy.write_row((*row, relative))
            result.source_files.append(relative)
    conn.execute(
        "delete from ops.quarantine where stream = 'crm_contacts' and partition_key = %s", (export_date,)
    )
    loaders.write_quarantine(conn, result.stream, export_date, result.batch_id, rejections)
    protection.protect_staging(conn, staging, "crm_contacts")
    columns += [name for name, _ in protection.extra_columns("crm_contacts")]
    written = _upsert(conn, staging, "crm_contacts", columns, "contact_id", {"_batch_id": result.batch_id})
    result.loaded += cursor.rowcount
    result.quarantined += len(rejections)
    result.received = result.loaded + result.quarantined
    result.written += written
