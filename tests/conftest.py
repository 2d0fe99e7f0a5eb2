"""Shared fixtures: a real PostgreSQL server for the whole test session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def pg_data_dir() -> Iterator[Path | None]:
    """The data folder of the session's embedded server (None with TEST_POSTGRES_URL)."""
    if os.environ.get("TEST_POSTGRES_URL"):
        yield None
        return
    from dagster_project.warehouse import embedded

    # Short path: the Unix socket lives in the data folder and socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="sw-test-", dir="/tmp"))
    data_dir = root / "pg"
    try:
        yield data_dir
    finally:
        embedded.stop(data_dir, mode="immediate")  # the data is thrown away next
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(pg_data_dir: Path | None) -> str:
    """A PostgreSQL server started for this test session (URL of its `postgres` database).

    Uses TEST_POSTGRES_URL when given (an existing server the tests may create databases on).
    """
    if pg_data_dir is None:
        return os.environ["TEST_POSTGRES_URL"]
    from dagster_project.warehouse import embedded

    return embedded.start(pg_data_dir).url("postgres")


@pytest.fixture(scope="session")
def as_analyst(pg_data_dir: Path | None) -> Callable[[str], str]:
    """URL of a test database -> the same database as the read-only analyst role, with its password."""
    from dagster_project.warehouse import connection, embedded

    def analyst_url(url: str) -> str:
        database = connection.connection_parts(url)["dbname"]
        if pg_data_dir is None:  # another server: the analyst role's password is its owner's business
            parsed = urlparse(connection.without_password(url))
            return parsed._replace(netloc=f"{embedded.ANALYST_ROLE}@{parsed.netloc.split('@')[-1]}").geturl()
        return embedded.status(pg_data_dir).url(database, embedded.ANALYST_ROLE)

    return analyst_url


def _fresh_database(server_url: str, prefix: str) -> str:
    from dagster_project.warehouse import connection, embedded

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(server_url, name)
    return connection.with_database(server_url, name)


@pytest.fixture
def warehouse_url(pg_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh, empty warehouse database with Sendwise's schemas; WAREHOUSE_URL points at it."""
    from dagster_project.warehouse import connection

    monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / "home"))  # before the hash key is installed
    url = _fresh_database(pg_server, "wh")
    connection.ensure_schemas(url)
    monkeypatch.setenv("WAREHOUSE_URL", url)
    return url


@pytest.fixture
def shop_url(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database standing in for the shop's OLTP database; SHOP_URL points at it."""
    url = _fresh_database(pg_server, "shop")
    monkeypatch.setenv("SHOP_URL", url)
    return url


@pytest.fixture
def fresh_database(pg_server: str):
    """A factory of fresh empty databases on the test server."""
    return lambda prefix="db": _fresh_database(pg_server, prefix)
