"""`sendwise dev`: the Dagster UI on 127.0.0.1:3000 over the embedded warehouse."""

from __future__ import annotations

import argparse
import os
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the UI listens on (0.0.0.0: reachable from other hosts)"
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project import preflight
    from dagster_project.automation.instance import ensure_dagster_home
    from dagster_project.dbt.project import prepare_manifest
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import PROJECT_ROOT, get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    preflight.check_port(args.host, args.port)
    preflight.check_source_dir(settings)
    preflight.check_warehouse(settings)
    preflight.check_esp(settings)
    ensure_dagster_home(settings)
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    prepare_manifest()
    shown = mask_url(url)
    print(f"warehouse: {shown}\nDagster UI: http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    os.chdir(PROJECT_ROOT)
    os.execv(dagster, [dagster, "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)])
    return 0
