"""Resolving where the warehouse (and the synthetic shop database) live, as plain functions."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlparse

import sqlalchemy as sa

from dagster_project.settings import SHOP_DATABASE, WAREHOUSE_DATABASE, Settings, get_settings
from dagster_project.warehouse import embedded

if TYPE_CHECKING:
    import psycopg

SCHEMAS = ("raw", "ml", "activation", "ops")


def warehouse_url(settings: Settings | None = None) -> str:
    """The warehouse's libpq URL: `WAREHOUSE_URL`, or the embedded server (started if needed)."""
    settings = settings or get_settings()
    if settings.warehouse_url:
        return settings.warehouse_url
    server = embedded.start(settings.pg_dir)
    embedded.ensure_database(server.url("postgres"), WAREHOUSE_DATABASE)
    return server.url(WAREHOUSE_DATABASE)


def shop_url(settings: Settings | None = None) -> str:
    """The shop OLTP database: `SHOP_URL`, or a `sendwise_shop` database beside the warehouse."""
    settings = settings or get_settings()
    if settings.shop_url:
        return settings.shop_url
    base = warehouse_url(settings)
    embedded.ensure_database(base, SHOP_DATABASE)
    return with_database(base, SHOP_DATABASE)


def with_database(url: str, database: str) -> str:
    parsed = urlparse(url)
    return parsed._replace(path=f"/{database}").geturl()


def without_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    userinfo, hostport = parsed.netloc.rsplit("@", 1)
    return parsed._replace(netloc=f"{userinfo.split(':', 1)[0]}@{hostport}").geturl()


def psql_command(url: str, settings: Settings | None = None) -> str:
    """A psql command line for `url` that prints no secret: the embedded warehouse's password is read
    from the role's pgpass file; another server's password is masked (its owner knows it)."""
    from dagster_project.privacy.masking import mask_url

    settings = settings or get_settings()
    if settings.warehouse_url:
        return f'psql "{mask_url(url)}"'
    user = connection_parts(url)["user"]
    return f'PGPASSFILE={embedded.passfile(settings.pg_dir, user)} psql "{without_password(url)}"'


def sqlalchemy_url(url: str, driver: str = "psycopg2") -> str:
    """A SQLAlchemy URL for a libpq URL (`postgresql://` gets an explicit driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return f"postgresql+{driver}://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, **kwargs) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(url), **kwargs)


def libpq_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix so psycopg can take the URL."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def connection_parts(url: str) -> dict[str, str]:
    """host/port/user/password/dbname of a libpq URL (host may be a socket folder)."""
    parsed = urlparse(libpq_url(url))
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    return {
        "host": unquote(query.get("host") or parsed.hostname or "localhost"),
        "port": str(query.get("port") or parsed.port or 5432),
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
        "dbname": parsed.path.lstrip("/") or "postgres",
    }


def dbt_env(url: str) -> dict[str, str]:
    """Environment variables that `dbt/profiles.yml` reads."""
    parts = connection_parts(url)
    return {
        "SENDWISE_PG_HOST": parts["host"],
        "SENDWISE_PG_PORT": parts["port"],
        "SENDWISE_PG_USER": parts["user"],
        "SENDWISE_PG_PASSWORD": parts["password"],
        "SENDWISE_PG_DBNAME": parts["dbname"],
    }


def ensure_schemas(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for schema in SCHEMAS:
                conn.execute(sa.text(f"create schema if not exists {schema}"))
    finally:
        engine.dispose()
    from dagster_project.privacy import requests

    requests.install_at(url)  # dbt reads the hash key and the suppressed identities


def table_exists(conn: psycopg.Connection, qualified_name: str) -> bool:
    """Whether the table or view `schema.name` exists (on a psycopg connection)."""
    return conn.execute("select to_regclass(%s) is not null", (qualified_name,)).fetchone()[0]


def has_column(conn: psycopg.Connection, qualified_name: str, column: str) -> bool:
    """Whether the table or view `schema.name` has `column`."""
    schema, table = qualified_name.split(".")
    return conn.execute(
        "select count(*) > 0 from information_schema.columns "
        "where table_schema = %s and table_name = %s and column_name = %s",
        (schema, table, column),
    ).fetchone()[0]
