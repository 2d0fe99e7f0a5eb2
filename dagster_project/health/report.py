"""The health report's figures, one frame per question, from the warehouse's own logs.

Every function takes an open psycopg connection and returns a DataFrame with fixed columns: empty when
its tables do not exist yet (a new warehouse) or hold nothing, so `sendwise status` always answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg

from dagster_project.settings import PROJECT_ROOT
from dagster_project.warehouse.connection import table_exists

DBT_TARGET = PROJECT_ROOT / "dbt" / "target"
SLOWEST_MODELS = 5


def _exists(conn: psycopg.Connection, *tables: str) -> bool:
    return all(table_exists(conn, table) for table in tables)


def _frame(conn: psycopg.Connection, tables: Sequence[str], sql: str, columns: Sequence[str]) -> pd.DataFrame:
    if not _exists(conn, *tables):
        return pd.DataFrame(columns=list(columns))
    rows = conn.execute(sql).fetchall()
    frame = pd.DataFrame(rows, columns=list(columns))
    for column in frame.columns:
        values = frame[column].dropna()
        if values.map(lambda v: isinstance(v, Decimal)).any():  # sums and rounding come back as Decimal
            integral = values.map(lambda v: v == v.to_integral_value()).all()
            frame[column] = frame[column].astype("Int64" if integral else float)
    return frame


def source_freshness(conn: psycopg.Connection) -> pd.DataFrame:
    """Per stream: its last successful load, how old that is, and the status of its latest load."""
    return _frame(
        conn,
        ["ops.load_log"],
        """
        select stream,
            max(finished_at) filter (where status = 'success') as last_success_at,
            round((extract(epoch from now() - max(finished_at) filter (where status = 'success'))
                / 3600)::numeric, 1) as hours_since_success,
            (array_agg(status order by finished_at desc))[1] as latest_status,
            (array_agg(coalesce(error, '') order by finished_at desc))[1] as latest_error,
            count(*) as loads,
            max(high_water_mark) as high_water_mark
        from ops.load_log group by stream order by stream
        """,
        ["stream", "last_success_at", "hours_since_success", "latest_status", "latest_error", "loads",
         "high_water_mark"],
    )  # fmt: skip


def load_rates(conn: psycopg.Connection) -> pd.DataFrame:
    """Per day and stream: records received, the share quarantined, and loads that failed."""
    return _frame(
        conn,
        ["ops.load_log"],
        """
        select finished_at::date as day, stream, sum(received) as received, sum(quarantined) as quarantined,
            coalesce(sum(quarantined)::float8 / nullif(sum(received), 0), 0) as quarantine_rate,
            count(*) filter (where status = 'failed') as failed_loads, count(*) as loads
        from ops.load_log group by 1, 2 order by 1, 2
        """,
        ["day", "stream", "received", "quarantined", "quarantine_rate", "failed_loads", "loads"],
    )


def quality_pass_rate(conn: psycopg.Connection) -> pd.DataFrame:
    """Per day and suite: validations run, how many passed (no failed error check), the pass rate."""
    return _frame(
        conn,
        ["ops.validation_results"],
        """
        select validated_at::date as day, suite, count(*) as validations,
            count(*) filter (where success) as passed, avg(success::int)::float8 as pass_rate,
            sum(failed_warnings) as failed_warnings
        from ops.validation_results group by 1, 2 order by 1, 2
        """,
        ["day", "suite", "validations", "passed", "pass_rate", "failed_warnings"],
    )


def sync_status(conn: psycopg.Connection) -> pd.DataFrame:
    """Per ESP destination: syncs, the latest one's status, and the share of failed syncs and records."""
    return _frame(
        conn,
        ["activation.esp_sync_log"],
        """
        select destination, count(*) as syncs, max(started_at) as last_sync_at,
            (array_agg(status order by started_at desc))[1] as latest_status,
            count(*) filter (where status <> 'success') as failed_syncs,
            avg((status <> 'success')::int)::float8 as sync_error_rate,
            coalesce(sum(coalesce(failed, 0) + coalesce(rejected, 0))::float8
                / nullif(sum(coalesce(planned, 0)), 0), 0) as record_error_rate,
            sum(coalesce(requests, 0)) as requests
        from activation.esp_sync_log group by destination order by destination
        """,
        ["destination", "syncs", "last_sync_at", "latest_status", "failed_syncs", "sync_error_rate",
         "record_error_rate", "requests"],
    )  # fmt: skip


def trigger_executions(conn: psycopg.Connection) -> pd.DataFrame:
    """Per day and trigger: campaign executions detected, and how many reached the ESP."""
    return _frame(
        conn,
        ["activation.campaign_executions"],
        """
        select detected_at::date as day, trigger_id, count(*) as executions,
            count(*) filter (where synced_at is not null) as synced,
            count(*) filter (where last_error is not null) as with_errors
        from activation.campaign_executions group by 1, 2 order by 1, 2
        """,
        ["day", "trigger_id", "executions", "synced", "with_errors"],
    )


def profile_stats(conn: psycopg.Connection) -> pd.DataFrame:
    """Profiles by measure (all, contactable, per quality level, per segment): count and share."""
    parts = []
    if _exists(conn, "marts.dim_customers"):
        parts.append(
            "select 'profiles' as measure, 'all' as value, count(*) as profiles from marts.dim_customers "
            "union all select 'contactable', 'yes', count(*) filter (where is_contactable) "
            "from marts.dim_customers "
            "union all select 'quality level', data_quality_level, count(*) from marts.dim_customers "
            "group by data_quality_level"
        )
    if _exists(conn, "ml.customer_segments"):
        parts.append(
            "select 'segment', segment_name, count(*) from ml.customer_segments group by segment_name"
        )
    columns = ["measure", "value", "profiles", "share"]
    if not parts:
        return pd.DataFrame(columns=columns)
    rows = conn.execute(" union all ".join(f"({p})" for p in parts) + " order by 1, 2").fetchall()
    frame = pd.DataFrame(rows, columns=columns[:3])
    total = frame.loc[frame["measure"] == "profiles", "profiles"].sum()
    frame["share"] = frame["profiles"] / total if total else 0.0
    return frame


def warehouse_size(conn: psycopg.Connection) -> pd.DataFrame:
    """Bytes per schema of the warehouse (tables with their indexes and TOAST), largest first."""
    rows = conn.execute(
        """
        select n.nspname, sum(pg_total_relation_size(c.oid))::bigint, count(*)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'm', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
            and n.nspname not like 'pg_toast%'
        group by 1 order by 2 desc
        """
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["schema", "bytes", "tables"])
    frame["megabytes"] = (frame["bytes"] / 1e6).round(1)
    return frame


def latest_run_results(target_dir: Path = DBT_TARGET) -> Path | None:
    """The newest run_results.json dbt wrote (dagster-dbt gives every invocation its own folder)."""
    candidates = list(target_dir.glob("run_results.json")) + list(target_dir.glob("*/run_results.json"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def slowest_models(run_results: Path | None = None, limit: int = SLOWEST_MODELS) -> pd.DataFrame:
    """The slowest models of the last dbt build, from its run_results.json."""
    columns = ["model", "status", "seconds"]
    path = run_results if run_results is not None else latest_run_results()
    if path is None or not path.exists():
        return pd.DataFrame(columns=columns)
    results: list[dict[str, Any]] = json.loads(path.read_text()).get("results", [])
    rows = [
        (r["unique_id"].removeprefix("model."), r.get("status"), float(r.get("execution_time") or 0))
        for r in results
        if r.get("unique_id", "").startswith("model.")
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("seconds", ascending=False, ignore_index=True).head(limit)


SECTIONS = {
    "Sources: freshness and last load": source_freshness,
    "Loads per day: quarantine and failures": load_rates,
    "Data quality: pass rate per suite and day": quality_pass_rate,
    "ESP sync per destination": sync_status,
    "Trigger executions per day": trigger_executions,
    "Profiles": profile_stats,
    "Warehouse size": warehouse_size,
}


def health_frames(conn: psycopg.Connection, run_results: Path | None = None) -> dict[str, pd.DataFrame]:
    """Every section of the report, in order."""
    frames = {title: compute(conn) for title, compute in SECTIONS.items()}
    frames["Slowest models of the last dbt build"] = slowest_models(run_results)
    return frames
