"""`sendwise warehouse start|stop|status|url`."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status", "url"])


def run(args: argparse.Namespace) -> int:
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection, embedded

    settings = get_settings()
    if settings.warehouse_url and args.action in ("start", "stop"):
        print(f"WAREHOUSE_URL is set; Sendwise does not manage that server ({args.action} skipped).")
        return 0
    if args.action == "start":
        url = connection.warehouse_url(settings)
        connection.ensure_schemas(url)
        print(f"warehouse running: {url}")
    elif args.action == "stop":
        print("stopped" if embedded.stop(settings.pg_dir) else "not running")
    elif args.action == "status":
        if settings.warehouse_url:
            print(f"external warehouse: {settings.warehouse_url}")
            return 0
        status = embedded.status(settings.pg_dir)
        print(f"running (pid {status.pid}) in {status.data_dir}" if status.running
              else f"not running ({status.data_dir})")
        return 0 if status.running else 3
    elif args.action == "url":
        print(connection.warehouse_url(settings))
    return 0
