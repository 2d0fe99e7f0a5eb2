"""The embedded warehouse: a PostgreSQL server that Sendwise runs itself under `.sendwise/pg`.

Uses the PostgreSQL binaries bundled in the `pgserver` wheel. The server listens on a Unix socket
inside its data folder only (no TCP port to collide with). Starting is idempotent and safe across
processes: a second process finds the running server through `postmaster.pid` and reuses it; a stale
pid file or socket left by a crash is detected and replaced by the next start.

Every role needs its password (scram-sha-256, on the socket as on TCP): `postgres`, the owner, and
`sendwise_analyst`, the read-only role dbt grants the marts to. Each password is generated on the first
start (or the first start of a data folder from before passwords) and kept as a one-line pgpass file
(`*:*:*:<role>:<password>`, mode 0600) in `secrets/` beside the data folder, never in it: as root,
pgserver makes every parent of the data folder world-readable, and `secrets/` is no parent of it (it is
0700). The server only ever receives the SCRAM verifier, computed by libpq. Until the first start has
rewritten pg_hba.conf (well under a second) the server trusts the socket, which is inside the data
folder and so reachable by its owner only.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2

from dagster_project.processes import process_alive

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
OWNER_ROLE = "postgres"
ANALYST_ROLE = "sendwise_analyst"  # = vars.analyst_role in dbt/dbt_project.yml
_HBA = """# Written by Sendwise (dagster_project/warehouse/embedded.py): every role needs its password.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
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

    def url(self, database: str, role: str = OWNER_ROLE, with_password: bool = True) -> str:
        """The role's libpq URL, with its password unless `with_password` is False (for showing)."""
        if not self.running or self.socket_dir is None:
            raise RuntimeError(f"embedded warehouse in {self.data_dir} is not running")
        secret = password(self.data_dir, role) if with_password else None
        return socket_url(self.socket_dir, database, role, secret)


def socket_url(socket_dir: Path, database: str, user: str = OWNER_ROLE, secret: str | None = None) -> str:
    credentials = f"{user}:{quote(secret, safe='')}" if secret else user
    return f"postgresql://{credentials}@/{database}?host={quote(str(socket_dir), safe='/')}"


def secrets_dir(data_dir: Path) -> Path:
    return data_dir.resolve().parent / "secrets"


def passfile(data_dir: Path, role: str = OWNER_ROLE) -> Path:
    """The role's pgpass file (`PGPASSFILE=<it> psql ...` connects without the password in the URL)."""
    return secrets_dir(data_dir) / f"pg_{role}.pgpass"


def password(data_dir: Path, role: str = OWNER_ROLE) -> str | None:
    try:
        line = passfile(data_dir, role).read_text().strip()
    except FileNotFoundError:
        return None
    return line.rsplit(":", 1)[1] if line else None


def status(data_dir: Path) -> ServerStatus:
    from pgserver.utils import PostmasterInfo

    data_dir = data_dir.resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or info.status != "ready" or not process_alive(info.pid):
        return ServerStatus(False, None, None, data_dir)
    return ServerStatus(True, info.pid, info.socket_dir, data_dir)


def start(data_dir: Path) -> ServerStatus:
    """Start the server if it is not running (initialising the data folder the first time)."""
    from pgserver.postgres_server import PostgresServer

    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    current = status(data_dir)
    if current.running:
        _require_passwords(data_dir)  # a server started before passwords existed is converted
        return current
    # cleanup_mode=None: the server outlives this process, so the CLI, Dagster and tests share it.
    data_dir.mkdir(exist_ok=True)
    # No live server owns this folder (checked above), so lock files are leftovers of a crash; a
    # killed postmaster can linger as a zombie whose pid would make postgres refuse to start.
    for leftover in ("postmaster.pid", ".s.PGSQL.5432.lock", ".s.PGSQL.5432"):
        (data_dir / leftover).unlink(missing_ok=True)
    PostgresServer._instances.pop(data_dir, None)  # a handle cached by this process may be stale
    PostgresServer(data_dir, cleanup_mode=None)
    _require_passwords(data_dir)
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
        pg_ctl(
            ["-w", "-m", "fast", "restart", "-l", str(data_dir / "log")],
            pgdata=data_dir,
            user=_system_user(),
            timeout=30,
        )
    except subprocess.CalledProcessError:
        log.warning("embedded warehouse restart after tuning failed; see %s", data_dir / "log")
        raise
    (data_dir / _TUNED_MARKER).write_text(json.dumps(tuning, indent=1, sort_keys=True) + "\n")


def _require_passwords(data_dir: Path) -> None:
    """Give every role its password and make pg_hba.conf require them (once per data folder)."""
    hba = data_dir / "pg_hba.conf"
    if hba.read_text() == _HBA:
        if password(data_dir) is None:
            raise RuntimeError(
                f"the embedded warehouse in {data_dir} requires passwords but {passfile(data_dir)} is "
                f"missing: restore it, or delete {data_dir} to start from an empty warehouse"
            )
        return
    import psycopg
    from psycopg import sql

    # The socket still trusts every role here (a new or pre-password data folder).
    with psycopg.connect(status(data_dir).url("postgres"), autocommit=True) as conn:
        conn.execute("alter system set password_encryption = 'scram-sha-256'")
        for role in (OWNER_ROLE, ANALYST_ROLE):
            secret = _ensure_passfile(data_dir, role)
            verifier = conn.pgconn.encrypt_password(secret.encode(), role.encode(), b"scram-sha-256").decode()
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            statement = "alter role {} login password {}" if exists else "create role {} login password {}"
            conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(verifier)))
        _replace_owned(hba, _HBA)
        conn.execute("select pg_reload_conf()")
    _wait_until_passwords_are_required(data_dir)
    log.info("embedded warehouse in %s now requires passwords (kept in %s)", data_dir, secrets_dir(data_dir))


def _ensure_passfile(data_dir: Path, role: str) -> str:
    """The role's password, generated into its pgpass file the first time (safe across processes)."""
    existing = password(data_dir, role)
    if existing:
        return existing
    folder = secrets_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    target = passfile(data_dir, role)
    draft = folder / f".{target.name}.{os.getpid()}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"*:*:*:{role}:{secrets.token_urlsafe(24)}\n")  # no ':' or '\\' to escape
    try:
        os.link(draft, target)  # atomic and fails if another process wrote it first: theirs wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return password(data_dir, role) or ""


def _replace_owned(path: Path, text: str) -> None:
    """Replace a file of the data folder atomically, keeping its owner (pgserver's OS user) and mode."""
    current = path.stat()
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(text)
    os.chmod(draft, current.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(draft, current.st_uid, current.st_gid)
    os.replace(draft, path)


def _wait_until_passwords_are_required(data_dir: Path, timeout_s: float = 10.0) -> None:
    """pg_reload_conf() only signals the postmaster: wait until a connection without password fails."""
    import psycopg

    url = status(data_dir).url("postgres", with_password=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=5, passfile=str(secrets_dir(data_dir) / "none")):
                pass
        except psycopg.OperationalError as error:
            if "password" in str(error):
                return
            raise
        time.sleep(0.05)
    raise RuntimeError(f"the embedded warehouse in {data_dir} still accepts connections without a password")
