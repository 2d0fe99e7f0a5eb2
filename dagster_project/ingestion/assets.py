"""Extraction assets: one per source table or event stream, landing in schema raw (group "raw")."""

import warnings

import dagster as dg
import psycopg

from dagster_project.ingestion import loaders, presence, upserts
from dagster_project.ingestion.loaders import ESP_EVENTS, WEB_EVENTS, EventStream, LoadResult
from dagster_project.ingestion.sources import SHOP_TABLES, ShopTable, SourcesResource
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

GROUP = "raw"


class EventLoadConfig(dg.Config):
    force: bool = False
    """Reload a day even if its file looks unchanged since the last load (same size and mtime)."""


def load_metadata(conn, table: str, results: list[LoadResult]) -> dict[str, dg.MetadataValue]:
    """Counts, marks, timing and a preview of the rows these loads landed."""
    received = sum(r.received for r in results)
    duration = sum(r.duration_s for r in results)
    batch_ids = [r.batch_id for r in results]
    marks = [r.high_water_mark for r in results if r.high_water_mark]
    notes = [note for r in results for note in r.notes]
    metadata: dict[str, dg.MetadataValue] = {
        "rows_received": dg.MetadataValue.int(received),
        "rows_loaded": dg.MetadataValue.int(sum(r.loaded for r in results)),
        "rows_quarantined": dg.MetadataValue.int(sum(r.quarantined for r in results)),
        "rows_written": dg.MetadataValue.int(sum(r.written for r in results)),
        "high_water_mark": dg.MetadataValue.text(max(marks) if marks else "none"),
        "batch_id": dg.MetadataValue.text(", ".join(batch_ids)),
        "duration_s": dg.MetadataValue.float(round(duration, 3)),
        "rows_per_second": dg.MetadataValue.float(round(received / duration, 1) if duration else 0.0),
        "source_files": dg.MetadataValue.int(sum(len(r.source_files) for r in results)),
        "preview": dg.MetadataValue.md(loaders.batch_preview(conn, table, batch_ids)),
    }
    if len(results) > 1:
        metadata["partitions"] = dg.MetadataValue.md(
            "| partition | status | received | loaded | quarantined |\n|---|---|---|---|---|\n"
            + "\n".join(
                f"| {r.partition_key} | {r.status} | {r.received} | {r.loaded} | {r.quarantined} |"
                for r in results
            )
        )
    if any(r.quarantined for r in results):
        metadata["quarantine_sample"] = dg.MetadataValue.md(loaders.quarantine_sample(conn, batch_ids))
    if notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))
    return metadata


def _log_result(context: dg.AssetExecutionContext, result: LoadResult) -> None:
    context.log.info(
        f"{result.stream} {result.partition_key or ''} {result.status}: received {result.received}, "
        f"loaded {result.loaded}, quarantined {result.quarantined} in {result.duration_s:.2f}s "
        f"(batch {result.batch_id})"
    )
    for failure in result.failures:
        context.log.error(f"{result.stream} failed: {failure}")


def finish(conn: psycopg.Connection, table: str, results: list[LoadResult]) -> dg.MaterializeResult:
    """The materialization of these loads, or, when a part failed, a dg.Failure naming each failed
    part and its first error line (raised after everything else was loaded), with the same metadata."""
    try:
        loaders.refresh_statistics(conn, table, sum(r.written for r in results))
        metadata = load_metadata(conn, table, results)
    except psycopg.Error as error:  # e.g. the warehouse went away mid-run
        metadata = {"metadata_error": dg.MetadataValue.text(loaders.first_line(error))}
    failed = [failure for r in results for failure in r.failures]
    if failed:
        parts = sum(r.parts for r in results)
        raise dg.Failure(
            description=f"raw/{table}: {len(failed)} of {parts} parts failed; " + "; ".join(failed),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


def _failure(table: str, error: Exception) -> dg.Failure:
    return dg.Failure(description=f"raw/{table}: {loaders.first_line(error)}")


def absent_result(
    context: dg.AssetExecutionContext,
    conn,
    sources: SourcesResource,
    source: str,
    stream: str,
    partition_key: str = "",
) -> dg.MaterializeResult | None:
    """For an absent source: log the load as `absent` (nothing read) and say why; None when present."""
    if source == "shop" and sources.shop_url:
        return None  # the resource names a shop: present
    source_dir = sources.get_source_dir() if source != "shop" else None
    why = presence.absence_reason(get_settings(), source, source_dir)
    if why is None:
        return None
    result = LoadResult(stream, loaders.new_batch_id(stream, partition_key), partition_key=partition_key)
    result.status = "absent"
    result.notes.append(f"source {source} absent: {why}")
    with conn.transaction():
        loaders.record_load(conn, result)
    context.log.info(f"{stream}: source {source} is absent ({why}); nothing loaded")
    return dg.MaterializeResult(metadata={**load_metadata(conn, stream, [result]),
                                          "status": dg.MetadataValue.text("absent")})  # fmt: skip


def shop_table_asset(table: ShopTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", table.stream],
        group_name=GROUP,
        kinds={"postgres"},
        description=(
            f"shop.{table.name} from the shop database, incremental on updated_at and upserted by "
            f"{table.primary_key} into raw.{table.stream} (latest version kept)."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
    ) -> dg.MaterializeResult:
        with loaders.connect(warehouse.get_url()) as conn:
            loaders.ensure_tables(conn)
            if absent := absent_result(context, conn, sources, "shop", table.stream):
                return absent
            fast = sources.shop_fast_path and sources.shop_is_postgres()
            try:
                result = upserts.load_shop_table(conn, sources.get_shop_url(), table, fast_path=fast)
            except Exception as error:
                raise _failure(table.stream, error) from error
            _log_result(context, result)
            return finish(conn, table.stream, [result])

    return _asset


@dg.asset(
    key=["raw", "crm_contacts"],
    group_name=GROUP,
    kinds={"json"},
    description=(
        "CRM bulk-export pages (`crm/contacts/<export date>/page-*.json`), export folders newer than the "
        "last one loaded, upserted by `contact_id` into `raw.crm_contacts` (newest `updated_at` wins)."
    ),
)
def crm_contacts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> dg.MaterializeResult:
    with loaders.connect(warehouse.get_url()) as conn:
        loaders.ensure_tables(conn)
        if absent := absent_result(context, conn, sources, "crm", "crm_contacts"):
            return absent
        try:
            result = upserts.load_crm_contacts(conn, sources.get_source_dir())
        except Exception as error:
            raise _failure("crm_contacts", error) from error
        _log_result(context, result)
        return finish(conn, "crm_contacts", [result])


def event_asset(
    stream: EventStream, partitions_def: dg.PartitionsDefinition, what: str
) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in Dagster 1.13
        return _event_asset(stream, partitions_def, what)


def _event_asset(
    stream: EventStream, partitions_def: dg.PartitionsDefinition, what: str
) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", stream.name],
        group_name=GROUP,
        kinds={"json"},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            f"{what} from `{stream.folder}/<YYYY-MM-DD>.jsonl` into `raw.{stream.table}`, one partition per "
            "file date; loading a day replaces that day's rows in one transaction."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: EventLoadConfig,
        warehouse: WarehouseResource,
        sources: SourcesResource,
    ) -> dg.MaterializeResult:
        source_dir = sources.get_source_dir()
        with loaders.connect(warehouse.get_url()) as conn:
            loaders.ensure_tables(conn)
            source = "web" if stream is WEB_EVENTS else "esp"
            days = context.partition_keys
            if absent := absent_result(context, conn, sources, source, stream.name, f"{days[0]}..{days[-1]}"):
                return absent
            results = loaders.load_event_partitions(conn, stream, source_dir, days, force=config.force)
            for result in results:
                _log_result(context, result)
            return finish(conn, stream.table, results)

    return _asset


def build_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        *(shop_table_asset(table) for table in SHOP_TABLES.values()),
        crm_contacts,
        event_asset(WEB_EVENTS, partitions_def, "Website events (Segment spec: page/track/identify)"),
        event_asset(ESP_EVENTS, partitions_def, "ESP engagement events (sent, delivered, open, click, ...)"),
    ]
