"""Time `sendwise generate` at a few world sizes and print rows per source and seconds.

    .venv/bin/python bench/generate.py                          # 10,000 and 100,000 customers, 120 days
    .venv/bin/python bench/generate.py --customers 1000000 --days 7

Each size is written to a temporary folder and a scratch shop database (`sendwise_bench_shop`) on the
warehouse server (WAREHOUSE_URL or the embedded one), both removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from dagster_project.synthetic.world import WorldConfig, generate
from dagster_project.warehouse import connection, embedded

BENCH_DATABASE = "sendwise_bench_shop"


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _shop_url() -> str:
    base = connection.warehouse_url()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"drop database if exists {BENCH_DATABASE}")
    embedded.ensure_database(base, BENCH_DATABASE)
    return connection.with_database(base, BENCH_DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the last world and its shop database")
    args = parser.parse_args()
    start = dt.date(2026, 7, 1)
    header = (
        f"{'customers':>10} {'days':>5} {'seconds':>8} {'web':>10} {'esp':>9} {'crm recs':>9} "
        f"{'orders':>9} {'items':>9} {'shop cust':>9} {'events/s':>9} {'MB':>7} {'peak RSS MB':>11}"
    )
    results = []
    for customers in args.customers:
        out = Path(tempfile.mkdtemp(prefix="sw-bench-world-"))
        shop_url = _shop_url()
        began = time.perf_counter()
        meta = generate(
            WorldConfig(
                out=out, shop_url=shop_url, customers=customers, days=args.days, start=start, seed=args.seed
            )
        )
        seconds = time.perf_counter() - began
        rows = meta["rows"]
        events = rows["web_events"] + rows["esp_events"]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(
            f"{customers:>10} {args.days:>5} {seconds:>8.1f} {rows['web_events']:>10} {rows['esp_events']:>9} "
            f"{rows['crm_contact_records']:>9} {rows['shop_orders']:>9} {rows['shop_order_items']:>9} "
            f"{rows['shop_customers']:>9} {events / seconds:>9.0f} {_folder_mb(out):>7.0f} {peak_mb:>11.0f}"
        )
        print(header, *results, sep="\n", flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    # peak RSS is the process maximum so far (sizes run in the order given)


if __name__ == "__main__":
    main()
