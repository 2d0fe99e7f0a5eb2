"""`sendwise warehouse start|stop|status|url`."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    parser.add_argument(
        "--analyst",
        action="store_true",
        help="url: the read-only analyst role (sendwise_analyst) instead of the owner",
    )
    parser.add_argument("--show-password", action="store_true",
                        help="url: put the password in the printed URL (by default it is left out and the "
                             "pgpass file that holds it is named on stderr)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection, embedded

    settings = get_settings()
    if settings.warehouse_url and args.action in ("start", "stop"):
        print(f"WAREHOUSE_URL is set; Sendwise does not manage that server ({args.action} skipped).")
        return 0
    if args.action == "start":
        url = connection.warehouse_url(settings)
        connection.ensure_schemas(url)
        print(f"warehouse running: {connection.without_password(url)}")
        print(f"connect with:      {connection.psql_command(url, settings)}")
    elif args.action == "stop":
        print("stopped" if embedded.stop(settings.pg_dir) else "not running")
    elif args.action == "status":
        if settings.warehouse_url:
            print(f"external warehouse: {mask_url(settings.warehouse_url)}")
            return 0
        status = embedded.status(settings.pg_dir)
        print(
            f"running (pid {status.pid}) in {status.data_dir}"
            if status.running
            else f"not running ({status.data_dir})"
        )
        return 0 if status.running else 3
    elif args.action == "url":
        return _print_url(args, settings)
    return 0


def _print_url(args: argparse.Namespace, settings) -> int:
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import WAREHOUSE_DATABASE
    from dagster_project.warehouse import connection, embedded

    if settings.warehouse_url:
        if args.analyst:
            print("WAREHOUSE_URL is set: the analyst role's password on that server is its owner's to set "
                  "(see dbt/README.md)", file=sys.stderr)  # fmt: skip
            return 2
        print(settings.warehouse_url if args.show_password else mask_url(settings.warehouse_url))
        return 0
    role = embedded.ANALYST_ROLE if args.analyst else embedded.OWNER_ROLE
    connection.warehouse_url(settings)  # starts the server and creates the database if needed
    url = embedded.status(settings.pg_dir).url(WAREHOUSE_DATABASE, role, with_password=args.show_password)
    print(url)
    if not args.show_password:
        passfile = embedded.passfile(settings.pg_dir, role)
        print(f"# password in {passfile}: PGPASSFILE={passfile} psql \"<url>\" (or --show-password)",
              file=sys.stderr)  # fmt: skip
    return 0
