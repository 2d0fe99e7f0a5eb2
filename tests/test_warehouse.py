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
        "host": "/tmp/a b/pg",
        "port": "5432",
        "user": "postgres",
        "password": "",
        "dbname": "wh",
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


def _auth_error(url: str) -> str:
    with pytest.raises(psycopg2.OperationalError) as error:
        psycopg2.connect(url, passfile=str(Path(tempfile.gettempdir()) / "no-such-passfile")).close()
    return str(error.value)


def test_every_role_needs_its_password_on_the_embedded_warehouse(data_dir: Path):
    server = embedded.start(data_dir)
    for role in (embedded.OWNER_ROLE, embedded.ANALYST_ROLE):
        bare = server.url("postgres", role, with_password=False)
        assert bare == f"postgresql://{role}@/postgres?host={server.socket_dir}"
        assert "no password supplied" in _auth_error(bare)
        wrong = bare.replace(f"{role}@", f"{role}:guessed@")
        assert f'password authentication failed for user "{role}"' in _auth_error(wrong)
        assert _query(server.url("postgres", role), "select current_user") == role
    assert _query(server.url("postgres"), "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid "
                  "where rolname = 'sendwise_analyst'") is True  # fmt: skip
    superuser = "select rolsuper from pg_roles where rolname = 'sendwise_analyst'"
    assert _query(server.url("postgres"), superuser) is False
    # The passwords live beside the data folder (whose parents pgserver opens to everyone), owner-only.
    secrets = data_dir.parent / "secrets"
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    for role in (embedded.OWNER_ROLE, embedded.ANALYST_ROLE):
        path = embedded.passfile(data_dir, role)
        assert path.parent == secrets and oct(path.stat().st_mode & 0o777) == "0o600"
        assert path.read_text() == f"*:*:*:{role}:{embedded.password(data_dir, role)}\n"
    # A restart keeps requiring them.
    embedded.stop(data_dir)
    restarted = embedded.start(data_dir)
    assert "no password supplied" in _auth_error(restarted.url("postgres", with_password=False))
    assert _query(restarted.url("postgres"), "select 1") == 1


def test_a_data_folder_from_before_passwords_is_converted_and_keeps_its_data(data_dir: Path):
    server = embedded.start(data_dir)
    conn = psycopg2.connect(server.url("postgres"))
    with conn, conn.cursor() as cur:
        cur.execute("create table kept (x int); insert into kept values (7)")
    conn.close()
    # As the warehouse was before passwords: trust auth, no secrets folder, a running server.
    (data_dir / "pg_hba.conf").write_text("local all all trust\n")
    _query(server.url("postgres"), "select pg_reload_conf()")
    shutil.rmtree(data_dir.parent / "secrets")
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            assert _query(server.url("postgres"), "select 1") == 1  # no password: trusted again
            break
        except psycopg2.OperationalError:
            time.sleep(0.05)

    converted = embedded.start(data_dir)
    assert converted.pid == server.pid  # converted while running, no restart
    assert "no password supplied" in _auth_error(converted.url("postgres", with_password=False))
    assert _query(converted.url("postgres"), "select x from kept") == 7
    analyst = converted.url("postgres", embedded.ANALYST_ROLE)
    assert _query(analyst, "select current_user") == "sendwise_analyst"


def test_a_protected_data_folder_without_its_passwords_is_a_clear_error(data_dir: Path):
    embedded.start(data_dir)
    embedded.stop(data_dir)
    embedded.passfile(data_dir).unlink()
    with pytest.raises(RuntimeError, match="requires passwords but .*pg_postgres.pgpass is missing"):
        embedded.start(data_dir)


def test_printed_warehouse_urls_hold_no_password(data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    import argparse

    from dagster_project.privacy.masking import mask_url
    from dagster_project.warehouse import cli

    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("SENDWISE_HOME", str(data_dir.parent))  # settings.pg_dir == data_dir
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    printed = {}
    shown = ("start", "url", "url --analyst", "status")
    for line in (*shown, "url --show-password", "url --analyst --show-password"):
        assert cli.run(parser.parse_args(line.split())) == 0
        out = capsys.readouterr()
        printed[line] = out.out + out.err
    owner, analyst = embedded.password(data_dir), embedded.password(data_dir, embedded.ANALYST_ROLE)
    for line in shown:
        assert owner not in printed[line] and analyst not in printed[line], line
    assert f"postgres:{owner}@" in printed["url --show-password"]
    assert f"sendwise_analyst:{analyst}@" in printed["url --analyst --show-password"]
    assert str(embedded.passfile(data_dir, embedded.ANALYST_ROLE)) in printed["url --analyst"]

    # The command `start` prints connects as printed, its password read from the pgpass file.
    from pgserver._commands import POSTGRES_BIN_PATH

    command = printed["start"].split("connect with:", 1)[1].strip()
    passfile, psql_url = command.split(" psql ", 1)
    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-tAc", "select current_user", psql_url.strip('"')],
        env={**os.environ, "PGPASSFILE": passfile.removeprefix("PGPASSFILE=")},
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "postgres"), result.stderr

    two = "postgresql://u:s3cret@db:5432/wh and postgres://a:b@h/x?password=p2&sslmode=require"
    assert (
        mask_url(two) == "postgresql://u:***@db:5432/wh and postgres://a:***@h/x?password=***&sslmode=require"
    )
    bare = "postgresql://postgres@/sendwise?host=/tmp/pg"
    assert mask_url(bare) == bare
