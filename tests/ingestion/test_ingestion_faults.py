"""Faults during a load (issue 11, "Faults"): a load killed with SIGKILL in the middle of its COPY, or a
warehouse stopped under it, leaves nothing behind, and the rerun reaches exactly the state of an
undisturbed load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hostile_corpus import DAY, LINE_CASES
from hostile_strategies import snapshot
from ingestion_helpers import esp_event, query

from dagster_project.ingestion import loaders

KILLED_LOAD = """
import dataclasses, pathlib, sys, time
from dagster_project.ingestion import loaders
url, source_dir, marker = sys.argv[1:4]
copied = 0
def slow_row(record):
    global copied
    copied += 1
    if copied == 40:  # half-way through the COPY: tell the test, then wait to be killed
        pathlib.Path(marker).write_text("copying")
        time.sleep(120)
    return loaders.ESP_EVENTS.to_row(record)
stream = dataclasses.replace(loaders.ESP_EVENTS, to_row=slow_row)
with loaders.connect(url) as conn:
    loaders.load_event_partition(conn, stream, pathlib.Path(source_dir), sys.argv[4])
"""


def load(url: str, source_dir: Path) -> loaders.LoadResult:
    with loaders.connect(url) as conn:
        loaders.ensure_tables(conn)
        return loaders.load_event_partition(conn, loaders.ESP_EVENTS, source_dir, DAY)


def state(url: str) -> tuple:
    marks = query(url, "select stream, partition_key, high_water_mark from ops.load_state order by 1, 2")
    return (*snapshot(url, "esp_events", "event_id"), marks)


def test_a_load_killed_mid_copy_leaves_nothing_and_the_rerun_is_exact(
    warehouse_url: str, fresh_database, tmp_path: Path
) -> None:
    hostile = [case.line for case in LINE_CASES if case.stream == "esp_events"]
    lines = [json.dumps(esp_event(f"e-{i}", DAY)).encode() for i in range(80)] + hostile
    path = tmp_path / loaders.ESP_EVENTS.folder / f"{DAY}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(lines))
    undisturbed = fresh_database("wh")
    load(undisturbed, tmp_path)
    load(warehouse_url, tmp_path)  # tables exist, the day is loaded once ...
    path.touch()  # ... and its file "changed", so the next load replaces the day
    os.utime(path, (time.time() + 5, time.time() + 5))
    before = state(warehouse_url)

    marker = tmp_path / "copying"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOAD, warehouse_url, str(tmp_path), str(marker), DAY], env=env
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the load never reached its COPY"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert state(warehouse_url) == before  # nothing of the killed load is visible
    assert load(warehouse_url, tmp_path).status == "success"
    assert state(warehouse_url) == state(undisturbed)


def test_a_warehouse_stopped_mid_copy_loses_nothing_and_the_rerun_is_exact(
    fresh_database, tmp_path: Path
) -> None:
    """The warehouse itself goes down (immediate shutdown) while a load is in its COPY: after a restart
    the day is as it was before that load, and the rerun reaches the undisturbed state exactly."""
    import shutil
    import tempfile

    from dagster_project.warehouse import embedded

    lines = [json.dumps(esp_event(f"w-{i}", DAY)).encode() for i in range(80)]
    path = tmp_path / loaders.ESP_EVENTS.folder / f"{DAY}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(lines))
    undisturbed = fresh_database("wh")
    load(undisturbed, tmp_path)

    root = Path(tempfile.mkdtemp(prefix="sw-stop-", dir="/tmp"))  # short: the socket lives in it
    data_dir = root / "pg"
    try:
        embedded.ensure_database(embedded.start(data_dir).url("postgres"), "stopped")
        url = embedded.start(data_dir).url("stopped")
        load(url, tmp_path)
        os.utime(path, (time.time() + 5, time.time() + 5))  # the file "changed": the next load replaces it
        before = state(url)

        marker = tmp_path / "copying"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_LOAD, url, str(tmp_path), str(marker), DAY],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 90
            while not marker.exists():
                assert child.poll() is None and time.monotonic() < deadline, "the load never reached its COPY"
                time.sleep(0.05)
            embedded.stop(data_dir, mode="immediate")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()

        url = embedded.start(data_dir).url("stopped")
        assert state(url) == before  # the interrupted load left nothing
        assert load(url, tmp_path).status == "success"
        assert state(url) == state(undisturbed)
    finally:
        embedded.stop(data_dir, mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
