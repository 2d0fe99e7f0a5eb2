"""Reading the marts the ML needs and writing the ml.* tables and model artefacts.

Writes are idempotent and atomic per asset: one transaction replaces the asset's rows (and upserts its
ml.model_runs row); artefacts are written to a temporary file and renamed into place first, so the
registry never names a file that does not exist."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import joblib
import pandas as pd
import psycopg

from dagster_project.warehouse.connection import table_exists
from ml.registry import ModelRun
from ml.segment_refresh import StoredSegmentation, stored_from_record

MARTS = "marts"
Stored = TypeVar("Stored")
FEATURE_TEXT_COLUMNS = ("customer_key", "top_categories", "behavioural_segments")
EMAIL_EVENT_COLUMNS = (
    "email_event_id, customer_key, event_type, event_at, message_id, delivered_at, is_machine_open"
)
EMAIL_EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "text_columns": ("email_event_id", "customer_key", "event_type", "message_id"),
    "time_columns": ("event_at", "delivered_at"),
    "bool_columns": ("is_machine_open",),
}
ENGAGEMENT = "customer_key is not null and event_type in ('delivered', 'open', 'click')"
LEVEL_CHECK = "source_level in ('user', 'segment', 'timezone', 'global', 'default')"

MODEL_RUNS_DDL = """
create table if not exists ml.model_runs (
    model text not null,
    version text not null,
    parameters jsonb not null,
    data_snapshot jsonb not null,
    metrics jsonb not null,
    created_at timestamptz not null default now(),
    primary key (model, version)
)"""
CUSTOMER_SEGMENTS_DDL = """
create table if not exists ml.customer_segments (
    customer_key text primary key,
    segment_id integer not null,
    segment_name text not null,
    distance double precision not null,
    confidence double precision not null,
    model_version text not null,
    previous_segment_id integer
)"""
SEND_TIME_DDL = f"""
create table if not exists ml.send_time_predictions (
    customer_key text primary key,
    best_hour_of_week integer not null check (best_hour_of_week between 0 and 167),
    local_hour integer not null check (local_hour between 0 and 23),
    local_weekday integer not null check (local_weekday between 0 and 6),
    timezone text not null,
    next_send_at_utc timestamptz not null,
    source_level text not null check ({LEVEL_CHECK}),
    confidence double precision not null,
    model_version text not null
)"""


def segment_profiles_ddl(features: Sequence[str]) -> str:
    centroid_columns = "".join(f",\n    {name} double precision" for name in features)
    return f"""
create table if not exists ml.segment_profiles (
    model_version text not null,
    segment_id integer not null,
    segment_name text not null,
    size bigint not null,
    share double precision not null{centroid_columns},
    primary key (model_version, segment_id)
)"""


def read_frame(
    conn: psycopg.Connection,
    query: str,
    params: Sequence[Any] = (),
    text_columns: Sequence[str] = (),
    time_columns: Sequence[str] = (),
    bool_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """A query's rows as a DataFrame through COPY (fast for millions of rows), timestamps in UTC."""
    buffer = io.BytesIO()
    with conn.cursor() as cursor:
        cursor.execute("set time zone 'UTC'")
        bound = psycopg.ClientCursor(conn).mogrify(query, params) if params else query
        with cursor.copy(f"copy ({bound}) to stdout with (format csv, header true)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        dtype={name: "object" for name in text_columns},
        keep_default_na=False,  # only empty fields are NULL: a text value "NA" or "null" stays text
        na_values=[""],
        low_memory=False,
    )
    for name in time_columns:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    for name in bool_columns:
        frame[name] = frame[name].map({"t": True, "f": False, True: True, False: False}).astype("boolean")
    return frame


def read_features(conn: psycopg.Connection) -> pd.DataFrame:
    return read_frame(
        conn,
        f"select * from {MARTS}.fct_customer_features order by customer_key",
        text_columns=FEATURE_TEXT_COLUMNS,
    )


def read_customers(conn: psycopg.Connection) -> pd.DataFrame:
    """Customers with their email decrypted (dim_customers holds a token and a ciphertext), in memory only."""
    from dagster_project.privacy.field_crypto import load_cipher

    encrypted = conn.execute(
        "select from information_schema.columns where table_schema = %s and table_name = 'dim_customers' "
        "and column_name = 'email_encrypted'",
        (MARTS,),
    ).fetchone()
    frame = read_frame(
        conn,
        f"select customer_key, {'email_encrypted' if encrypted else 'email'} as email, timezone, "
        f"is_contactable, esp_profile_id from {MARTS}.dim_customers order by customer_key",
        text_columns=("customer_key", "email", "timezone", "esp_profile_id"),
        bool_columns=("is_contactable",),
    )
    if encrypted:
        cipher = load_cipher()
        frame["email"] = [cipher.decrypt(v) if isinstance(v, str) else v for v in frame["email"]]
    return frame


def read_email_events(conn: psycopg.Connection) -> pd.DataFrame:
    """Only what the send-time model uses: deliveries, opens and clicks of known customers."""
    return read_frame(
        conn,
        f"select {EMAIL_EVENT_COLUMNS} from {MARTS}.fct_email_events where {ENGAGEMENT}",
        **EMAIL_EVENT_TYPES,
    )


def read_segments(conn: psycopg.Connection) -> pd.DataFrame | None:
    if not table_exists(conn, "ml.customer_segments"):
        return None
    return read_frame(
        conn,
        "select customer_key, segment_id, previous_segment_id, model_version from ml.customer_segments",
        text_columns=("customer_key", "model_version"),
    )


def previous_segmentation(
    conn: psycopg.Connection, current_version: str
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The last other run's profiles, and each customer's segment before this version was written."""
    if not (table_exists(conn, "ml.model_runs") and table_exists(conn, "ml.segment_profiles")):
        return None, None
    with conn.cursor() as cursor:
        cursor.execute(
            "select version from ml.model_runs where model = 'customer_segments' and version <> %s "
            "order by created_at desc, version desc limit 1",
            (current_version,),
        )
        row = cursor.fetchone()
    profiles = (
        read_frame(
            conn,
            "select * from ml.segment_profiles where model_version = %s",
            (row[0],),
            text_columns=("model_version", "segment_name"),
        )
        if row
        else None
    )
    segments = read_segments(conn)
    if segments is None or segments.empty:
        return profiles, None
    rerun = segments["model_version"] == current_version
    before = segments["segment_id"].where(~rerun, segments["previous_segment_id"])
    assignments = pd.DataFrame({"customer_key": segments["customer_key"], "segment_id": before}).dropna()
    return profiles, assignments.astype({"segment_id": "int64"})


def read_data_as_of(conn: psycopg.Connection) -> pd.Timestamp | None:
    """The dbt build's as-of instant (intermediate.int_calendar__as_of), or None when there is none."""
    if not table_exists(conn, "intermediate.int_calendar__as_of"):
        return None
    with conn.cursor() as cursor:
        cursor.execute("select max(as_of_at) from intermediate.int_calendar__as_of")
        row = cursor.fetchone()
    return pd.Timestamp(row[0]).tz_convert("UTC") if row and row[0] is not None else None


def stored_segmentation(conn: psycopg.Connection, models_dir: Path) -> StoredSegmentation | None:
    """The model the last segmentation run used (its fit's artefact and figures), or None."""
    if not table_exists(conn, "ml.model_runs"):
        return None
    with conn.cursor() as cursor:
        cursor.execute(
            "select version, data_snapshot from ml.model_runs where model = 'customer_segments' "
            "order by created_at desc, version desc limit 1"
        )
        row = cursor.fetchone()
    if row is None:
        return None
    fitted_version = row[1].get("fitted_version") or row[0]
    fit = read_model_run(conn, "customer_segments", fitted_version)
    artefact = models_dir / "customer_segments" / f"{fitted_version}.joblib"
    if fit is None or not artefact.exists():
        return None  # the artefact is gone: refit
    record = {key: fit[key] for key in ("parameters", "data_snapshot", "metrics")}
    return stored_from_record(joblib.load(artefact), fitted_version, record)


def copy_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="")
    columns = ", ".join(frame.columns)
    with (
        conn.cursor() as cursor,
        cursor.copy(f"copy {table} ({columns}) from stdin with (format csv)") as copy,
    ):
        copy.write(buffer.getvalue())


def upsert_run(conn: psycopg.Connection, run: ModelRun) -> None:
    row = run.row()
    with conn.cursor() as cursor:
        cursor.execute(MODEL_RUNS_DDL)
        cursor.execute(
            "insert into ml.model_runs (model, version, parameters, data_snapshot, metrics) "
            "values (%(model)s, %(version)s, %(parameters)s, %(data_snapshot)s, %(metrics)s) "
            "on conflict (model, version) do update set parameters = excluded.parameters, "
            "data_snapshot = excluded.data_snapshot, metrics = excluded.metrics",
            row,
        )


def record_model_run(conn: psycopg.Connection, run: ModelRun) -> None:
    """Record a run that writes no table of its own (e.g. the CDNOW reproduction) in ml.model_runs."""
    with conn.transaction():
        upsert_run(conn, run)


def write_segmentation(
    conn: psycopg.Connection,
    run: ModelRun,
    assignments: pd.DataFrame,
    profiles: pd.DataFrame,
    features: Sequence[str],
) -> None:
    """Replace ml.customer_segments with this run, (re)write its profiles, record the run; one transaction."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtext('ml.customer_segments'))")
        cursor.execute(CUSTOMER_SEGMENTS_DDL)
        cursor.execute(segment_profiles_ddl(features))
        for name in features:
            cursor.execute(
                f"alter table ml.segment_profiles add column if not exists {name} double precision"
            )
        cursor.execute("truncate ml.customer_segments")
        copy_frame(conn, "ml.customer_segments", assignments)
        cursor.execute("delete from ml.segment_profiles where model_version = %s", (run.version,))
        copy_frame(conn, "ml.segment_profiles", profiles)
        upsert_run(conn, run)


def write_send_times(conn: psycopg.Connection, run: ModelRun, predictions: pd.DataFrame) -> None:
    replace_model_table(conn, "ml.send_time_predictions", SEND_TIME_DDL, predictions, run)


def replace_model_table(
    conn: psycopg.Connection, table: str, ddl: str, rows: pd.DataFrame, run: ModelRun
) -> None:
    """Replace `table` with this run's rows and record the run, in one transaction (serialised per table)."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtext(%s))", (table,))
        cursor.execute(ddl)
        cursor.execute(f"truncate {table}")
        copy_frame(conn, table, rows)
        upsert_run(conn, run)


def read_model_run(conn: psycopg.Connection, model: str, version: str) -> dict[str, Any] | None:
    with conn.cursor() as cursor:
        cursor.execute(
            "select parameters, data_snapshot, metrics, created_at from ml.model_runs "
            "where model = %s and version = %s",
            (model, version),
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(("parameters", "data_snapshot", "metrics", "created_at"), row, strict=True))


def read_fit_in_use(
    conn: psycopg.Connection,
    models_dir: Path,
    model: str,
    state_table: str,
    stamp_column: str,
    tables: Sequence[str],
    stored_type: Callable[..., Stored],
) -> tuple[Stored | None, pd.Timestamp | None]:
    """The fit daily runs score with, and the stamp its stored rows were computed up to.

    `state_table` names the fit (columns fitted_version and `stamp_column`); `stored_type` is built from
    its ml.model_runs record and joblib artefact as (version, as_of, parameters, metrics, artefact; None
    when the file is gone). (None, None) when one of `tables`, the state or the record is missing.
    """
    if not all(table_exists(conn, name) for name in (*tables, state_table, "ml.model_runs")):
        return None, None
    row = conn.execute(f"select fitted_version, {stamp_column} from {state_table}").fetchone()
    if row is None or row[1] is None:
        return None, None
    fit = read_model_run(conn, model, row[0])
    if fit is None:
        return None, None
    path = models_dir / model / f"{row[0]}.joblib"
    artefact = joblib.load(path) if path.exists() else None
    as_of = pd.Timestamp(fit["data_snapshot"]["as_of"])
    stored = stored_type(row[0], as_of, fit["parameters"], fit["metrics"], artefact)
    return stored, pd.Timestamp(row[1]).tz_convert("UTC")


def read_ground_truth(ground_truth_dir: Path) -> pd.DataFrame | None:
    """people.csv of the synthetic world, for scoring only (None when the world has none)."""
    path = ground_truth_dir / "people.csv"
    if not path.exists():
        return None
    return pd.read_csv(
        path, dtype={"esp_profile_id": "object", "canonical_email": "object", "shop_customer_id": "object"}
    )


def save_artefact(models_dir: Path, model: str, version: str, artefact: Any) -> Path:
    """models_dir/<model>/<version>.joblib, written atomically."""
    target = models_dir / model / f"{version}.joblib"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".joblib.tmp")
    joblib.dump(artefact, temporary, compress=3)
    os.replace(temporary, target)
    return target


def save_png(reports_dir: Path, version: str, name: str, png: bytes) -> Path:
    target = reports_dir / "ml" / version / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    return target
