"""The send_time_predictions asset over three days of a hand-written world on Postgres: the first run
refits, the next two score only the customers whose engagement, segment or key changed, and what they
store equals a full recomputation against the same level model."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import psycopg
import pytest

from dagster_project.ml import io, send_time_io
from dagster_project.ml.assets import send_time_predictions
from dagster_project.warehouse.connection import libpq_url
from dagster_project.warehouse.resource import WarehouseResource
from ml.config import MLConfig
from ml.send_time import next_send_slots, prepare_engagement, score_send_time
from ml.send_time_stats import message_state

SCHEMA = """
create schema if not exists marts;
create schema if not exists intermediate;
create schema if not exists ml;
create table marts.dim_customers (
    customer_key text, email text, timezone text, is_contactable boolean, esp_profile_id text);
create table marts.fct_email_events (
    email_event_id text, customer_key text, event_type text, event_at timestamptz, message_id text,
    delivered_at timestamptz, is_machine_open boolean, _built_at timestamptz);
create table intermediate.int_calendar__as_of (as_of_at timestamptz);
create table ml.customer_segments (
    customer_key text, segment_id integer, previous_segment_id integer, model_version text);
"""
CUSTOMERS = [
    ("a", "Europe/Berlin"),
    ("b", "America/New_York"),
    ("c", None),
    ("d", "Asia/Tokyo"),
    ("f", "UTC"),
]
# (id, customer, type, at, message, delivered_at, machine open); Monday 2025-03-03 is day 1
DAY_1 = [
    ("e1", "a", "delivered", "2025-03-03 08:00", "m1", "2025-03-03 08:00", False),
    ("e2", "a", "open", "2025-03-03 09:30", "m1", "2025-03-03 08:00", False),
    ("e3", "b", "delivered", "2025-03-03 14:00", "m3", "2025-03-03 14:00", False),
    ("e4", "b", "open", "2025-03-04 15:00", "m3", "2025-03-03 14:00", False),
    ("e5", "c", "open", "2025-03-03 21:00", None, None, False),  # no message id: stands alone
    ("e6", "d", "delivered", "2025-03-03 00:00", "m5", "2025-03-03 00:00", False),
    ("e7", "d", "open", "2025-03-03 01:00", "m5", "2025-03-03 00:00", False),
    ("e8", "f", "delivered", "2025-03-03 10:00", "m7", "2025-03-03 10:00", False),
    ("e9", "f", "click", "2025-03-03 11:00", "m7", "2025-03-03 10:00", False),
]
DAY_2 = [
    ("e10", "a", "delivered", "2025-03-04 07:00", "m2", "2025-03-04 07:00", False),
    ("e11", "a", "open", "2025-03-04 07:01", "m2", "2025-03-04 07:00", True),  # machine open
    ("e12", "a", "open", "2025-03-04 18:00", "m2", "2025-03-04 07:00", False),
    ("e13", "b", "open", "2025-03-03 20:00", "m3", "2025-03-03 14:00", False),  # late: now the first
]
DAY_3 = [
    ("e14", "g", "delivered", "2025-03-05 09:00", "m8", "2025-03-05 09:00", False),  # a new customer
    ("e15", "g", "click", "2025-03-05 12:00", "m8", "2025-03-05 09:00", False),
]
AS_OF = {1: "2025-03-04 00:00+00", 2: "2025-03-05 00:00+00", 3: "2025-03-06 00:00+00"}
BUILT = {1: "2025-03-04 01:00+00", 2: "2025-03-05 01:00+00", 3: "2025-03-06 01:00+00"}


def _execute(url: str, sql: str, params: tuple = ()) -> None:
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(sql, params)


def _query(url: str, sql: str, times: tuple[str, ...] = ()) -> pd.DataFrame:
    with psycopg.connect(libpq_url(url)) as conn:
        text = ("customer_key", "model_version", "message_key")
        return io.read_frame(conn, sql, text_columns=text, time_columns=times)


def _load_day(url: str, day: int, events: list[tuple]) -> None:
    with psycopg.connect(libpq_url(url)) as conn:
        for row in events:
            conn.execute(
                "insert into marts.fct_email_events values (%s, %s, %s, (%s || '+00')::timestamptz, %s, "
                "(%s || '+00')::timestamptz, %s, %s)",
                (*row, BUILT[day]),
            )
        conn.execute("truncate intermediate.int_calendar__as_of")
        conn.execute("insert into intermediate.int_calendar__as_of values (%s)", (AS_OF[day],))


def _run(url: str) -> dict:
    result = dg.materialize([send_time_predictions], resources={"warehouse": WarehouseResource(url=url)})
    assert result.success
    metadata = result.asset_materializations_for_node("ml__send_time_predictions")[0].metadata
    return {key: value.value for key, value in metadata.items()}


def _predictions(url: str) -> pd.DataFrame:
    return _query(
        url, "select * from ml.send_time_predictions order by customer_key", ("next_send_at_utc",)
    ).set_index("customer_key")


def _messages(url: str) -> list[tuple]:
    rows = _query(url, "select * from ml.send_time_messages order by customer_key, message_key")
    return [tuple(None if pd.isna(v) else v for v in row) for row in rows.itertuples(index=False)]


@pytest.fixture
def world(warehouse_url: str) -> str:
    _execute(warehouse_url, SCHEMA)
    with psycopg.connect(libpq_url(warehouse_url)) as conn:
        for key, zone in CUSTOMERS:
            conn.execute(
                "insert into marts.dim_customers values (%s, %s, %s, true, %s)", (key, f"{key}@x", zone, key)
            )
            conn.execute("insert into ml.customer_segments values (%s, 1, null, 's1')", (key,))
    return warehouse_url


def test_daily_send_times_equal_a_full_recomputation(world: str):
    url = world
    _load_day(url, 1, DAY_1)
    first = _run(url)
    assert first["refit_reason"] == "no stored statistics"
    day_1 = _predictions(url)
    fitted_version = first["model_version"]
    assert set(day_1.index) == {"a", "b", "c", "d", "f"} and (day_1["model_version"] == fitted_version).all()

    _load_day(url, 2, DAY_2)
    second = _run(url)
    assert second["refit_reason"] == "none: changed customers scored"
    day_2 = _predictions(url)
    # only a (a new message) and b (a late, earlier open) were scored again: the others keep day 1's rows
    assert set(day_2.index[day_2["model_version"] == second["model_version"]]) == {"a", "b"}
    assert (day_2.loc[["c", "d", "f"], "model_version"] == fitted_version).all()
    assert second["rescored_customers"] == 2

    # day 3: d turns out to be c (its events are rebuilt under c, d leaves dim_customers), f moves to
    # another segment, g is new
    _load_day(url, 3, DAY_3)
    _execute(
        url,
        "update marts.fct_email_events set customer_key = 'c', _built_at = %s where customer_key = 'd'",
        (BUILT[3],),
    )
    _execute(
        url,
        "delete from marts.dim_customers where customer_key = 'd'; "
        "insert into marts.dim_customers values ('g', 'g@x', 'Europe/Paris', true, 'g'); "
        "update ml.customer_segments set previous_segment_id = 1, segment_id = 2 where customer_key = 'f'",
    )
    third = _run(url)
    day_3 = _predictions(url)
    assert set(day_3.index) == {"a", "b", "c", "f", "g"}
    assert set(day_3.index[day_3["model_version"] == third["model_version"]]) == {"c", "f", "g"}
    assert (day_3.loc[["a", "b"], "model_version"] == second["model_version"]).all()
    assert (day_3["next_send_at_utc"] > pd.Timestamp(AS_OF[3])).all()  # every slot follows the as-of

    # a full recomputation: everyone scored from all events against the same level model
    config = MLConfig()
    with psycopg.connect(libpq_url(url)) as conn:
        customers = io.read_customers(conn).sort_values("customer_key", ignore_index=True)
        events = io.read_email_events(conn)
        segments = io.read_segments(conn)
    models_dir = Path(os.environ["SENDWISE_HOME"])
    model = joblib.load(next(models_dir.rglob(f"{fitted_version}.joblib")))
    previous = day_2["best_hour_of_week"].reindex(customers["customer_key"]).fillna(-1).to_numpy(np.int64)
    engagement = prepare_engagement(events, customers, config.send_time)
    full = score_send_time(model, engagement, customers, segments, previous_best=previous)
    slots = next_send_slots(
        full["best_hour_of_week"].to_numpy(), customers["timezone"], pd.Timestamp(AS_OF[3])
    )
    assert day_3["best_hour_of_week"].tolist() == full["best_hour_of_week"].tolist()
    assert day_3["source_level"].tolist() == full["source_level"].tolist()
    assert np.allclose(day_3["confidence"], full["confidence"])
    assert (day_3["next_send_at_utc"].to_numpy() == slots["next_send_at_utc"].to_numpy()).all()
    # c now holds d's message, counted in c's zone (UTC: none known), and its lone open
    assert full.set_index("customer_key").loc["c", "past_responses"] == 2

    # the stored statistics equal those of all events; rebuilding them from scratch gives the same rows
    state, _ = message_state(events, batch="full")
    expected = state[state.index.get_level_values("customer_key").isin(customers["customer_key"])]
    incremental = _messages(url)
    assert [(key, message) for key, message, *_ in incremental] == sorted(expected.index.tolist())
    _execute(url, "drop table ml.send_time_messages")
    assert _run(url)["refit_reason"] == "no stored statistics"
    assert _messages(url) == incremental

    # unchanged data: nobody is scored again
    assert _run(url)["rescored_customers"] == 0
    with psycopg.connect(libpq_url(url)) as conn:
        assert send_time_io.events_built_until(conn) == (True, pd.Timestamp(BUILT[3]))
