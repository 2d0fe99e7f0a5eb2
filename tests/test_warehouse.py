"""The embedded warehouse: idempotent start, reuse across processes, recovery after a crash."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from dagster_project.warehouse import connection, embedded


@pytest.fixture
def data_dir():
    root = Path(tempfile.mkdtemp(prefix="sw-wh-", dir="/tmp"))
    yield root / "pg"
    embedded.stop(root / "pg")
    shutil.rmtree(root, ignore_errors=True)


def _query(url: str, sql: str):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_start_is_idempotent_and_a_second_process_reuses_the_server(data_dir: Path):
    first = embedded.start(data_dir)
    assert first.running
    assert embedded.start(data_dir).pid == first.pid

    code = (
        "from pathlib import Path; from dagster_project.warehouse import embedded; "
        f"print(embedded.start(Path({str(data_dir)!r})).pid)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout.strip()) == first.pid
    assert _query(first.url("postgres"), "select 1") == 1


def test_stop_then_start_keeps_the_data(data_dir: Path):
    server = embedded.start(data_dir)
    embedded.ensure_database(server.url("postgres"), "keep")
    url = server.url("keep")
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("create table t (x int); insert into t values (42)")
    conn.close()

    assert embedded.stop(data_dir) is True
    assert embedded.status(data_dir).running is False
    assert embedded.stop(data_dir) is False
    assert _query(embedded.start(data_dir).url("keep"), "select x from t") == 42


def test_a_crashed_server_does_not_block_the_next_start(data_dir: Path):
    server = embedded.start(data_dir)
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while embedded.status(data_dir).running and time.time() < deadline:
        time.sleep(0.1)
    assert (data_dir / "postmaster.pid").exists()  # the crash left its pid file behind

    restarted = embedded.start(data_dir)
    assert restarted.running and restarted.pid != server.pid
    assert _query(restarted.url("postgres"), "select 1") == 1


def test_warehouse_url_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://u:p@db.example:6543/wh")
    monkeypatch.setenv("SENDWISE_HOME", str(tmp_path))
    assert connection.warehouse_url() == "postgresql://u:p@db.example:6543/wh"
    assert not (tmp_path / "pg").exists()  # nothing embedded was started


def test_schemas_are_created(warehouse_url: str):
    schemas = _query(
        warehouse_url,
        "select string_agg(schema_name, ',' order by schema_name) from information_schema.schemata "
        "where schema_name in ('raw','ml','activation','ops')",
    )
    assert schemas == "activation,ml,ops,raw"


def test_connection_parts_for_socket_and_tcp_urls():
    assert connection.connection_parts("postgresql://postgres@/wh?host=/tmp/a%20b/pg") == {
        "host": "/tmp/a b/pg", "port": "5432", "user": "postgres", "password": "", "dbname": "wh",
    }
    assert connection.connection_parts("postgresql+psycopg2://u:s3cret@h:6000/d")["password"] == "s3cret"


def test_tuning_is_sized_from_the_machine():
    gib = 1024**3
    tuning = embedded.tuning_for(16 * gib, 4)
    expected = {
        "shared_buffers": "2048MB", "effective_cache_size": "8192MB", "work_mem": "128MB",
        "maintenance_work_mem": "1024MB", "max_parallel_workers": "4", "max_parallel_workers_per_gather": "3",
        "max_parallel_maintenance_workers": "2", "max_worker_processes": "8",
    }  # fmt: skip
    assert {name: tuning[name] for name in expected} == expected
    small = embedded.tuning_for(1 * gib, 1)  # floors, and no parallel workers on one core
    assert (small["shared_buffers"], small["work_mem"], small["max_parallel_workers_per_gather"]) == (
        "128MB", "16MB", "0",
    )  # fmt: skip
    assert embedded.tuning_for(1024 * gib, 96)["work_mem"] == "512MB"  # capped


def test_the_server_runs_with_the_machine_tuning_and_retunes_when_it_changes(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    server = embedded.start(data_dir)
    assert _query(server.url("postgres"), "show work_mem") == embedded.machine_tuning()["work_mem"]
    embedded.stop(data_dir)
    bigger = {**embedded.machine_tuning(), "work_mem": "77MB"}  # as if the machine had grown
    monkeypatch.setattr(embedded, "machine_tuning", lambda: bigger)
    restarted = embedded.start(data_dir)
    assert _query(restarted.url("postgres"), "show work_mem") == "77MB"
