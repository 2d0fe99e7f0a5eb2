"""The send-time statistics in ml tables, and the two ways a run updates them.

- ml.send_time_messages: one state row per (customer, message) (ml/send_time_stats.py).
- ml.send_time_scored: the time zone and segment each customer's prediction was computed with.
- ml.send_time_state: the level model in use (its version; the artefact holds the rates) and how far
  marts.fct_email_events was read (its `_built_at`, the build that wrote each row).

A refit reads all engagement and rewrites everything; a daily run reads the events of the messages whose
rows were built since the last run, replaces their state rows and scores the changed customers. Both
write predictions, statistics and the run record in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import psycopg

from dagster_project.ml import io
from dagster_project.warehouse.connection import has_column, table_exists
from ml.config import MLConfig
from ml.features import KEY
from ml.pipeline import SEND_TIME_MODEL, SendTimeRun
from ml.send_time_refresh import (
    StoredSendTime,
    customers_to_score,
    rescore_send_time,
    scored_inputs,
)
from ml.send_time_stats import STATE_COLUMNS, message_state

MESSAGES = "ml.send_time_messages"
SCORED = "ml.send_time_scored"
STATE = "ml.send_time_state"
EVENTS = f"{io.MARTS}.fct_email_events"
STAMP = "_built_at"
TIME_COLUMNS = STATE_COLUMNS[2:]
DDL = f"""
create table if not exists {MESSAGES} (
    customer_key text not null,
    message_key text not null,
    delivered_at timestamptz,
    response_at timestamptz,
    response_delivered_at timestamptz,
    primary key (message_key, customer_key)
);
create index if not exists send_time_messages_customer on {MESSAGES} (customer_key);
create table if not exists {SCORED} (customer_key text primary key, timezone text, segment_id integer);
create table if not exists {STATE} (fitted_version text not null, events_built_until timestamptz)"""
MESSAGE_KEY = "coalesce(message_id, '~' || email_event_id)"


def events_built_until(conn: psycopg.Connection) -> tuple[bool, pd.Timestamp | None]:
    """(whether fct_email_events has the build stamp, the newest stamp)."""
    if not has_column(conn, EVENTS, STAMP):
        return False, None
    until = conn.execute(f"select max({STAMP}) from {EVENTS}").fetchone()[0]
    return True, None if until is None else pd.Timestamp(until).tz_convert("UTC")


def read_stored(
    conn: psycopg.Connection, models_dir: Path
) -> tuple[StoredSendTime | None, pd.Timestamp | None]:
    """The level model in use with its fit record, and the stamp read up to (None, None without stats)."""
    return io.read_fit_in_use(
        conn, models_dir, SEND_TIME_MODEL, STATE, "events_built_until", (MESSAGES, SCORED), StoredSendTime
    )


def read_predictions(conn: psycopg.Connection) -> pd.DataFrame:
    if not table_exists(conn, "ml.send_time_predictions"):
        return pd.DataFrame(columns=[KEY, "best_hour_of_week", "source_level", "confidence", "model_version"])
    return io.read_frame(
        conn,
        "select * from ml.send_time_predictions",
        text_columns=(KEY, "timezone", "source_level", "model_version"),
        time_columns=("next_send_at_utc",),
    )


def _state_rows(state: pd.DataFrame) -> pd.DataFrame:
    """message_state's frame as ml.send_time_messages rows (UTC-aware times)."""
    rows = state.reset_index()[list(STATE_COLUMNS)]
    for column in TIME_COLUMNS:
        rows[column] = pd.to_datetime(rows[column]).dt.tz_localize("UTC")
    return rows


def _write_tables(
    conn: psycopg.Connection,
    run: SendTimeRun,
    scored: pd.DataFrame,
    fitted_version: str,
    until: pd.Timestamp | None,
) -> None:
    with conn.cursor() as cursor:
        cursor.execute(f"truncate {SCORED}; truncate {STATE}")
        io.copy_frame(conn, SCORED, scored)
        cursor.execute(f"insert into {STATE} values (%s, %s)", (fitted_version, until))
    io.write_send_times(conn, run.run, run.predictions)


def write_refit(
    conn: psycopg.Connection,
    run: SendTimeRun,
    events: pd.DataFrame,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    until: pd.Timestamp | None,
) -> None:
    """After a refit on all engagement: every table rewritten (the statistics from all events)."""
    state, _ = message_state(events, batch="refit")
    state = state[state.index.get_level_values(KEY).isin(customers[KEY])]
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtext(%s))", (MESSAGES,))
        cursor.execute(DDL)
        cursor.execute(f"truncate {MESSAGES}")
        io.copy_frame(conn, MESSAGES, _state_rows(state))
        _write_tables(conn, run, scored_inputs(customers, segments), run.version, until)


def _keys(values: Iterable[str]) -> list[str]:
    return sorted({str(value) for value in values})


def refresh(
    conn: psycopg.Connection,
    stored: StoredSendTime,
    after: pd.Timestamp,
    until: pd.Timestamp | None,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    config: MLConfig,
    as_of: pd.Timestamp,
) -> SendTimeRun:
    """A daily run: the state rows of the messages built since `after` are replaced by their events now
    (late events, deliveries, a merge that moved them to another key), the changed customers scored."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtext(%s))", (MESSAGES,))
        cursor.execute(
            f"create temporary table touched_messages on commit drop as select distinct {MESSAGE_KEY} "
            f"as message_key from {EVENTS} where {STAMP} > %s and {STAMP} <= %s",
            (after, until),
        )
        events = io.read_frame(
            conn,
            f"select {io.EMAIL_EVENT_COLUMNS} from {EVENTS} where {io.ENGAGEMENT} "
            f"and {MESSAGE_KEY} in (select message_key from touched_messages)",
            **io.EMAIL_EVENT_TYPES,
        )
        state, machine_opens = message_state(events, batch="refresh")
        state = state[state.index.get_level_values(KEY).isin(customers[KEY])]
        cursor.execute(
            f"delete from {MESSAGES} where message_key in (select message_key from touched_messages) "
            "returning customer_key"
        )
        changed = {row[0] for row in cursor.fetchall()} | set(state.index.get_level_values(KEY))
        io.copy_frame(conn, MESSAGES, _state_rows(state))
        scored = io.read_frame(conn, f"select * from {SCORED}", text_columns=(KEY, "timezone"))
        gone = _keys(set(scored[KEY]) - set(customers[KEY]))
        cursor.execute(f"delete from {MESSAGES} where customer_key = any(%s::text[])", (gone,))
        current = scored_inputs(customers, segments)
        previous = read_predictions(conn)
        to_score = customers_to_score(current, scored, previous, changed)
        messages = io.read_frame(
            conn,
            f"select * from {MESSAGES} where customer_key = any(%s::text[])",
            (_keys(to_score),),
            text_columns=(KEY, "message_key"),
            time_columns=TIME_COLUMNS,
        )
        snapshot = {
            "events_built_until": None if until is None else until.isoformat(),
            "refreshed_messages": int(cursor.execute("select count(*) from touched_messages").fetchone()[0]),
            "machine_opens_in_refreshed_messages": machine_opens,
        }
        run = rescore_send_time(
            stored, messages, customers, segments, previous, to_score, config, as_of, snapshot
        )
        _write_tables(conn, run, current, stored.fitted_version, until)
    return run
