"""Time `sendwise generate` at a few world sizes; print rows per source, seconds and peak memory.

    .venv/bin/python bench/generate.py                          # 10,000 and 100,000 customers, 120 days
    .venv/bin/python bench/generate.py --customers 1000000 --days 7

Seconds are wall-clock time; CPU s is the generator process's own CPU time, which a busy machine
inflates less (the shop server's work runs in its own process, alongside).

Each size runs in its own process (so peak RSS is per size), writes to a temporary folder and a scratch
shop database (`sendwise_bench_shop`) on the warehouse server (WAREHOUSE_URL or the embedded one); both
are removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DATABASE = "sendwise_bench_shop"
COLUMNS = (  # (heading, key in a result, width)
    ("customers", "customers", 10), ("days", "days", 5), ("seconds", "seconds", 8),
    ("CPU s", "cpu_seconds", 7),
    ("web events", "web_events", 11), ("esp events", "esp_events", 10),
    ("crm records", "crm_contact_records", 11), ("shop customers", "shop_customers", 14),
    ("orders", "shop_orders", 9), ("order items", "shop_order_items", 11),
    ("events/s", "events_per_second", 9), ("disk MB", "disk_mb", 8), ("peak RSS MB", "peak_rss_mb", 11),
)  # fmt: skip


def _drop_scratch_shop() -> str:
    """Drop the scratch shop database; returns the server's URL."""
    import psycopg

    from dagster_project.warehouse import connection

    base = connection.warehouse_url()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"drop database if exists {BENCH_DATABASE}")
    return base


def _scratch_shop_url() -> str:
    from dagster_project.warehouse import connection, embedded

    base = _drop_scratch_shop()
    embedded.ensure_database(base, BENCH_DATABASE)
    return connection.with_database(base, BENCH_DATABASE)


def _cpu_seconds() -> float:
    """This process's CPU time (the generator's own work; the shop server's COPY work is not in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_one(customers: int, days: int, seed: int, keep: bool) -> dict:
    from dagster_project.synthetic.world import WorldConfig, generate

    out = Path(tempfile.mkdtemp(prefix="sw-bench-world-"))
    config = WorldConfig(out=out, shop_url=_scratch_shop_url(), customers=customers, days=days,
                         start=dt.date(2026, 7, 1), seed=seed)  # fmt: skip
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    meta = generate(config, progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - began
    rows = meta["rows"]
    result = {
        "customers": customers, "days": days, "seconds": round(seconds, 1),
        "cpu_seconds": round(_cpu_seconds() - cpu_began, 1), **rows,
        "events_per_second": round((rows["web_events"] + rows["esp_events"]) / seconds),
        "disk_mb": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }  # fmt: skip
    if keep:
        print(f"  kept {out} and database {BENCH_DATABASE}", file=sys.stderr)
    else:
        shutil.rmtree(out, ignore_errors=True)
        _drop_scratch_shop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the last world and its shop database")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.customers[0], args.days, args.seed, args.keep)))
        return
    print(" ".join(f"{heading:>{width}}" for heading, _, width in COLUMNS), flush=True)
    for customers in args.customers:
        command = [sys.executable, __file__, "--one", "--customers", str(customers), "--days", str(args.days),
                   "--seed", str(args.seed), *(["--keep"] if args.keep else [])]  # fmt: skip
        result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(" ".join(f"{result[key]:>{width}}" for _, key, width in COLUMNS), flush=True)


if __name__ == "__main__":
    main()
