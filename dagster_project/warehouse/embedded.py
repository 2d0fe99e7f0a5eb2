"""The embedded warehouse: a PostgreSQL server that Sendwise runs itself under `.sendwise/pg`.

Uses the PostgreSQL binaries bundled in the `pgserver` wheel. The server listens on a Unix socket
inside its data folder only (no TCP port to collide with). Starting is idempotent and safe across
processes: a second process finds the running server through `postmaster.pid` and reuses it; a stale
pid file or socket left by a crash is detected and replaced by the next start.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2

log = logging.getLogger(__name__)
# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR that warns on every use.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

# Fixed settings for a single-user analytical workload; memory and parallelism come from tuning_for().
_FIXED_TUNING = {
    "max_wal_size": "4GB",
    "synchronous_commit": "off",
    "max_connections": "200",
    "random_page_cost": "1.1",  # local SSD-class storage: index reads are not 4x a sequential read
}
_TUNED_MARKER = ".sendwise_tuned"
_MB = 1024 * 1024


def tuning_for(ram_bytes: int, cores: int) -> dict[str, str]:
    """Server settings sized from the machine: Postgres shares it with Dagster, dbt and the ML steps.

    shared_buffers 1/8 of RAM (not the 1/4 of a dedicated server) and effective_cache_size 1/2; work_mem
    RAM/128 (a dbt build runs 4 threads, each query several sorts and hashes, each up to 2x work_mem);
    one parallel worker per extra core.
    """

    def mb(value: float, low: int, high: int) -> str:
        return f"{int(min(max(value / _MB, low), high))}MB"

    cores = max(cores, 1)
    return {
        **_FIXED_TUNING,
        "shared_buffers": mb(ram_bytes / 8, 128, 8192),
        "effective_cache_size": mb(ram_bytes / 2, 512, 65536),
        "work_mem": mb(ram_bytes / 128, 16, 512),
        "maintenance_work_mem": mb(ram_bytes / 16, 64, 2048),
        "max_worker_processes": str(max(8, cores + 4)),
        "max_parallel_workers": str(cores),
        "max_parallel_workers_per_gather": str(min(4, cores - 1)),
        "max_parallel_maintenance_workers": str(max(1, min(4, cores // 2))),
    }


def machine_tuning() -> dict[str, str]:
    import psutil

    return tuning_for(psutil.virtual_memory().total, psutil.cpu_count() or 1)


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    socket_dir: Path | None
    data_dir: Path

    def url(self, database: str) -> str:
        if not self.running or self.socket_dir is None:
            raise RuntimeError(f"embedded warehouse in {self.data_dir} is not running")
        return socket_url(self.socket_dir, database)


def socket_url(socket_dir: Path, database: str, user: str = "postgres") -> str:
    return f"postgresql://{user}@/{database}?host={quote(str(socket_dir), safe='/')}"


def status(data_dir: Path) -> ServerStatus:
    from pgserver.utils import PostmasterInfo

    data_dir = data_dir.resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or info.status != "ready" or not _alive(info.pid):
        return ServerStatus(False, None, None, data_dir)
    return ServerStatus(True, info.pid, info.socket_dir, data_dir)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start(data_dir: Path) -> ServerStatus:
    """Start the server if it is not running (initialising the data folder the first time)."""
    from pgserver.postgres_server import PostgresServer

    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    current = status(data_dir)
    if current.running:
        return current
    # cleanup_mode=None: the server outlives this process, so the CLI, Dagster and tests share it.
    data_dir.mkdir(exist_ok=True)
    # No live server owns this folder (checked above), so lock files are leftovers of a crash; a
    # killed postmaster can linger as a zombie whose pid would make postgres refuse to start.
    for leftover in ("postmaster.pid", ".s.PGSQL.5432.lock", ".s.PGSQL.5432"):
        (data_dir / leftover).unlink(missing_ok=True)
    PostgresServer._instances.pop(data_dir, None)  # a handle cached by this process may be stale
    PostgresServer(data_dir, cleanup_mode=None)
    tuning = machine_tuning()
    if _applied_tuning(data_dir) != tuning:  # first start, or the machine changed (more RAM, cores)
        _tune(data_dir, tuning)
    return status(data_dir)


def stop(data_dir: Path, mode: str = "fast") -> bool:
    """Stop the server; returns False when it was not running.

    `mode` is pg_ctl's: "fast" (checkpoint, then stop) or "immediate" (no checkpoint: for throwaway
    servers such as the tests', whose data is deleted right after).
    """
    current = status(data_dir)
    if not current.running:
        return False
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "-m", mode, "stop"], pgdata=current.data_dir, user=_system_user())
    return True


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server behind `server_url` if it does not exist."""
    conn = psycopg2.connect(server_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(f'create database "{database}"')
    finally:
        conn.close()


def drop_database(server_url: str, database: str) -> None:
    """Drop `database` (closing its other connections first) if it exists."""
    conn = psycopg2.connect(server_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{database}" with (force)')
    finally:
        conn.close()


def _system_user() -> str | None:
    # pgserver runs postgres as the OS user `pgserver` when we are root (postgres refuses root).
    return "pgserver" if os.geteuid() == 0 else None


def _applied_tuning(data_dir: Path) -> dict[str, str] | None:
    marker = data_dir / _TUNED_MARKER
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _tune(data_dir: Path, tuning: dict[str, str]) -> None:
    """ALTER SYSTEM on Sendwise's own embedded server only (never a WAREHOUSE_URL server), then restart."""
    from pgserver._commands import pg_ctl

    url = status(data_dir).url("postgres")
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name, value in tuning.items():
                cur.execute(f"alter system set {name} = %s", (value,))
    finally:
        conn.close()
    try:
        pg_ctl(["-w", "-m", "fast", "restart", "-l", str(data_dir / "log")], pgdata=data_dir,
               user=_system_user(), timeout=30)
    except subprocess.CalledProcessError:
        log.warning("embedded warehouse restart after tuning failed; see %s", data_dir / "log")
        raise
    (data_dir / _TUNED_MARKER).write_text(json.dumps(tuning, indent=1, sort_keys=True) + "\n")
