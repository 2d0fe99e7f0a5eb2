"""`sendwise docs`: build the dbt documentation site (offline) into dbt/target, optionally serve it."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serve", action="store_true", help="serve the docs on --port after building")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip compiling SQL (faster; catalog still read from the warehouse)",
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project.dbt.project import DBT_PROJECT_DIR, run_dbt
    from dagster_project.warehouse import connection

    url = connection.warehouse_url()
    connection.ensure_schemas(url)
    generate = ["docs", "generate", "--static"] + (["--no-compile"] if args.no_compile else [])
    result = run_dbt(generate, url, check=False)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-2000:])
        return result.returncode
    target = DBT_PROJECT_DIR / "target"
    print(f"dbt docs: {target / 'static_index.html'} (self-contained, opens offline)")
    if args.serve:
        run_dbt(["docs", "serve", "--port", str(args.port), "--no-browser"], url)
    return 0
