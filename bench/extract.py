"""Extraction throughput: each raw asset beside a plain COPY of the same rows, in the same run.

    .venv/bin/python bench/extract.py --customers 100000 --days 30

Generates a synthetic world of N customers in a scratch SENDWISE_HOME (its own embedded Postgres),
materializes each extraction asset on its own (events: all days in one run) and times it, then
copies the very rows each asset landed out of the warehouse into a file and times a plain
`COPY ... FROM STDIN` of that file into an empty table of the same columns (binary and CSV).
Prints rows/s of both and their ratio (target: extraction >= 50% of plain COPY).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ASSETS = (
    "shop_customers", "shop_products", "shop_orders", "shop_order_items", "crm_contacts", "web_events",
    "esp_events",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--home", type=Path, help="scratch SENDWISE_HOME (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (and its server)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N loads and COPYs (default 3)")
    parser.add_argument("--reuse-world", action="store_true", help="skip generation if the world exists")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="sw-bench-", dir="/tmp"))
    os.environ["SENDWISE_HOME"] = str(home)
    os.environ.pop("WAREHOUSE_URL", None)
    os.environ.pop("SHOP_URL", None)
    os.environ.pop("SENDWISE_SOURCE_DIR", None)
    os.environ["SENDWISE_EVENTS_START"] = args.start
    try:
        return run(args, home)
    finally:
        if not args.keep:
            from dagster_project.warehouse import embedded

            embedded.stop(home / "pg")
            shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace, home: Path) -> int:
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import get_settings

    settings = get_settings()
    if not (args.reuse_world and settings.source_dir.exists()):
        started = time.perf_counter()
        command = [sys.executable, "-m", "dagster_project.cli", "generate", "--customers",
                   str(args.customers), "--days", str(args.days), "--start", args.start]  # fmt: skip
        subprocess.run(command, check=True, cwd=REPO)
        seconds = time.perf_counter() - started
        print(f"generated {args.customers:,} customers x {args.days} days in {seconds:.1f}s")

    import dagster as dg

    from dagster_project.ingestion.definitions import build_defs
    from dagster_project.ingestion.partitions import available_partition_keys
    from dagster_project.ingestion.sources import SourcesResource
    from dagster_project.warehouse import connection
    from dagster_project.warehouse.resource import WarehouseResource

    url = connection.warehouse_url(settings)
    engine = connection.create_engine(url)
    with engine.begin() as conn:  # a scratch warehouse: start every run from empty raw and ops schemas
        conn.exec_driver_sql("drop schema if exists raw cascade; drop schema if exists ops cascade")
    engine.dispose()
    connection.ensure_schemas(url)
    days = available_partition_keys(settings)
    defs = build_defs(settings)
    resources = {"warehouse": WarehouseResource(), "sources": SourcesResource()}
    instance = dg.DagsterInstance.ephemeral()
    by_name = {a.key.path[-1]: a for a in defs.assets or []}

    print(f"\nwarehouse {mask_url(url)}\n")
    header = (
        f"{'asset':<18}{'rows':>11}{'asset s':>9}{'asset rows/s':>14}{'run s':>8}"
        f"{'COPY bin rows/s':>17}{'ratio':>7}{'COPY csv rows/s':>17}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    totals = {"rows": 0, "asset_s": 0.0, "binary_s": 0.0, "csv_s": 0.0}
    for name in ASSETS:
        tags = {}
        if by_name[name].partitions_def is not None:
            tags = {
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            }
        best: dict | None = None
        for attempt in range(args.repeat):  # best of N: the machine is shared and noisy
            if attempt:
                forget_asset(url, name)
            started = time.perf_counter()
            result = dg.materialize([by_name[name]], resources=resources, instance=instance, tags=tags)
            run_seconds = time.perf_counter() - started
            metadata = {
                k: v.value
                for e in result.get_asset_materialization_events()
                for k, v in e.materialization.metadata.items()
            }
            metadata["run_s"] = run_seconds
            if best is None or float(metadata["duration_s"]) < float(best["duration_s"]):
                best = metadata
        assert best is not None
        rows, asset_seconds = int(best["rows_received"]), float(best["duration_s"])
        binary_seconds, copied = min(plain_copy_seconds(url, name, "binary") for _ in range(args.repeat))
        csv_seconds, _ = min(plain_copy_seconds(url, name, "csv") for _ in range(args.repeat))
        # CRM: the upsert keeps one row per contact, so fewer rows land than were received.
        assert copied == int(best["rows_written"]) or name == "crm_contacts", (name, copied, best)
        asset_rate = rows / asset_seconds if asset_seconds else 0.0
        binary_rate, csv_rate = copied / binary_seconds, copied / csv_seconds
        print(line(name, rows, asset_seconds, asset_rate, best["run_s"], binary_rate, csv_rate))
        totals["rows"] += rows
        totals["asset_s"] += asset_seconds
        totals["binary_s"] += rows / binary_rate
        totals["csv_s"] += rows / csv_rate
    rate = totals["rows"] / totals["asset_s"]
    binary_rate, csv_rate = totals["rows"] / totals["binary_s"], totals["rows"] / totals["csv_s"]
    print("-" * len(header))
    print(line("all", totals["rows"], totals["asset_s"], rate, None, binary_rate, csv_rate))
    print(LEGEND)
    return 0


LEGEND = """
asset s = the load itself (connector read + parse + COPY + upsert/replace + quarantine + state, one
transaction); run s = the whole Dagster run around it. COPY = plain COPY FROM STDIN of the landed rows,
prepared beforehand as a binary or CSV file, into an empty table with the same columns (no parsing,
no upsert, no index)."""


def line(
    name: str, rows: int, seconds: float, rate: float, run_seconds: float | None, binary: float, csv: float
) -> str:
    run = f"{run_seconds:>8.2f}" if run_seconds is not None else " " * 8
    return (
        f"{name:<18}{rows:>11,}{seconds:>9.2f}{rate:>14,.0f}{run}"
        f"{binary:>17,.0f}{rate / binary:>7.0%}{csv:>17,.0f}{rate / csv:>7.0%}"
    )


def forget_asset(url: str, name: str) -> None:
    """Drop what an asset loaded and its marks, so that it loads everything again."""
    import psycopg

    from dagster_project.warehouse import connection

    with psycopg.connect(connection.libpq_url(url)) as conn:
        conn.execute(f"drop table raw.{name}")
        for table in ("load_state", "quarantine"):
            conn.execute(f"delete from ops.{table} where stream = %s", (name,))


def plain_copy_seconds(url: str, table: str, format_: str) -> tuple[float, int]:
    """Seconds to COPY the rows of raw.<table>, prepared as a file, into a fresh table of the same shape."""
    import psycopg

    from dagster_project.warehouse import connection

    with tempfile.TemporaryFile() as prepared, psycopg.connect(connection.libpq_url(url)) as conn:
        with conn.cursor().copy(f"copy raw.{table} to stdout (format {format_})") as copy:
            for block in copy:
                prepared.write(block)
        prepared.seek(0)
        conn.execute("create schema if not exists bench")
        conn.execute(f"drop table if exists bench.{table}")
        conn.execute(f"create table bench.{table} (like raw.{table})")
        conn.commit()
        started = time.perf_counter()
        cursor = conn.cursor()
        with cursor.copy(f"copy bench.{table} from stdin (format {format_})") as copy:
            while block := prepared.read(1 << 20):
                copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute(f"drop table bench.{table}")
        conn.commit()
        return seconds, cursor.rowcount


if __name__ == "__main__":
    sys.exit(main())
