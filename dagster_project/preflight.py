"""Checks that run before a command does any work: every setting points at something usable.

Each check is a plain function that returns nothing or raises `PreflightError` naming the setting and
the fix; `sendwise` prints it as one line and exits 2. Commands call the checks they need first
(`for_pipeline` for run/check-sources/demo), so a bad setting fails in seconds, before any load.
"""

from __future__ import annotations

import socket
from pathlib import Path

from dagster_project.settings import Settings, SettingsError

CONNECT_TIMEOUT_S = 5


class PreflightError(SettingsError):
    """A setting that points at nothing usable (a missing folder, an unreachable database, ...)."""


def check_source_dir(settings: Settings) -> None:
    """A configured SENDWISE_SOURCE_DIR must exist (the default folder is Sendwise's to create)."""
    folder = settings.source_dir
    if settings.source_dir_configured and not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise PreflightError(
            "SENDWISE_SOURCE_DIR",
            f"{folder} {what}; point it at the folder holding crm/, web/ and esp/ (or unset it)",
        )


def check_database(url: str, setting: str) -> None:
    """The database behind `url` answers within a few seconds."""
    from dagster_project.privacy.masking import mask_url
    from dagster_project.warehouse.connection import libpq_url

    try:
        if libpq_url(url).startswith(("postgresql://", "postgres://")):
            import psycopg

            with psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S):
                pass
        else:
            from dagster_project.warehouse.connection import create_engine

            engine = create_engine(url)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except Exception as error:  # any driver's connection error: the message is what matters
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PreflightError(
            setting, f"cannot connect to {mask_url(url)} ({first_line}); fix the URL or start that server"
        ) from error


def check_warehouse(settings: Settings) -> None:
    if settings.warehouse_url:
        check_database(settings.warehouse_url, "WAREHOUSE_URL")


def check_shop(settings: Settings) -> None:
    if settings.shop_url and not settings.source_absent("shop"):
        check_database(settings.shop_url, "SHOP_URL")


def check_esp(settings: Settings, dry_run: bool = False) -> None:
    """A real ESP needs its API key (except to preview a sync) and the list Sendwise manages."""
    provider = settings.esp_provider
    if provider == "sandbox":
        return
    if not settings.esp_api_key and not dry_run:
        raise PreflightError(
            "ESP_API_KEY", f"ESP_PROVIDER={provider} needs an API key; set ESP_API_KEY (or use --dry-run)"
        )
    if not settings.esp_list_id:
        raise PreflightError(
            "ESP_LIST_ID",
            f"ESP_PROVIDER={provider} needs the list/audience Sendwise manages; set ESP_LIST_ID",
        )


def check_quality_thresholds(settings: Settings) -> None:
    """Every threshold override names a known suite and check, with bounds that check has."""
    from dagster_project.quality.suites import apply_thresholds, load_suites

    try:
        apply_thresholds(load_suites(), settings.quality_thresholds)
    except ValueError as error:
        raise PreflightError("SENDWISE_QUALITY_THRESHOLDS", str(error)) from None


def check_port(host: str, port: int, setting: str = "--port") -> None:
    """Nothing listens on host:port yet (the Dagster UI would start without a UI otherwise)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PreflightError(
                setting, f"{host}:{port} is already in use ({error.strerror}); pass another --port"
            ) from None


def for_pipeline(settings: Settings) -> None:
    """What run, check-sources and demo need: sources, warehouse, ESP and thresholds."""
    check_source_dir(settings)
    check_warehouse(settings)
    check_shop(settings)
    check_esp(settings)
    check_quality_thresholds(settings)


def embedded_shop_exists(settings: Settings) -> bool:
    """Whether the embedded `sendwise_shop` database exists (without creating it)."""
    from dagster_project.settings import SHOP_DATABASE
    from dagster_project.warehouse import embedded

    if settings.warehouse_url:
        return _database_exists(settings.warehouse_url, SHOP_DATABASE)
    server = embedded.status(settings.pg_dir)
    if not server.running and not Path(settings.pg_dir, "PG_VERSION").exists():
        return False
    server = embedded.start(settings.pg_dir)
    return _database_exists(server.url("postgres"), SHOP_DATABASE)


def _database_exists(server_url: str, database: str) -> bool:
    import psycopg

    from dagster_project.warehouse.connection import libpq_url

    with psycopg.connect(libpq_url(server_url), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        row = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
    return row is not None
