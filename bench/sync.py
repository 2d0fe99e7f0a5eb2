"""ESP sync throughput: a full sync of N profiles to the local ESP sandbox, then a no-change resync.

    .venv/bin/python bench/sync.py --profiles 100000

Builds marts.dim_customers / fct_customer_features and ml.customer_segments / send_time_predictions
with N contactable customers (plus 5% who are not) in a scratch embedded Postgres, starts the sandbox
as its own process (validating every request against ../shared/esp-specs, like in the demo), and times:
1. the full first sync (bulk import jobs of 10,000 profiles, job polling, state writes),
2. a resync with nothing changed (must send zero requests),
3. a resync after 1% of the profiles changed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TABLES = """
create schema if not exists marts;
create table marts.dim_customers (customer_key text primary key, email text, first_name text, last_name text,
  subscription_status text, is_email_valid boolean, is_contactable boolean, lifetime_value numeric);
create table marts.fct_customer_features (customer_key text primary key, engagement_score double precision,
  behavioural_segments text, lifetime_value numeric);
create table ml.customer_segments (customer_key text, segment_id integer, segment_name text,
  model_version text);
create table ml.send_time_predictions (customer_key text, best_hour_of_week integer, timezone text,
  next_send_at_utc timestamptz, source_level text);
"""
SEGMENTS = ["loyal champions", "at risk", "new browsers", "bargain hunters", "window shoppers"]


def build_marts(url: str, profiles: int) -> int:
    import psycopg

    from dagster_project.warehouse.connection import libpq_url

    rng = random.Random(1)
    total = int(profiles / 0.95)
    base = datetime(2026, 6, 30, tzinfo=UTC)
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur:
        cur.execute(TABLES)
        contactable = 0
        with cur.copy("copy marts.dim_customers from stdin") as copy:
            for i in range(total):
                ok = contactable < profiles and rng.random() > 0.05 or contactable + (total - i) <= profiles
                contactable += ok
                copy.write_row(
                    (
                        f"c{i:07d}",
                        f"person{i}@example.com",
                        f"First{i}",
                        f"Last{i}",
                        "subscribed" if ok else "unsubscribed",
                        True,
                        ok,
                        round(rng.uniform(0, 900), 2),
                    )
                )
        with cur.copy("copy marts.fct_customer_features from stdin") as copy:
            for i in range(total):
                copy.write_row(
                    (f"c{i:07d}", round(rng.random(), 4), "vip,browser", round(rng.uniform(0, 900), 2))
                )
        with cur.copy("copy ml.customer_segments from stdin") as copy:
            for i in range(total):
                s = rng.randrange(len(SEGMENTS))
                copy.write_row((f"c{i:07d}", s, SEGMENTS[s], "bench"))
        with cur.copy("copy ml.send_time_predictions from stdin") as copy:
            for i in range(total):
                hour = rng.randrange(168)
                copy.write_row((f"c{i:07d}", hour, "Europe/Berlin", base + timedelta(hours=hour), "user"))
    return contactable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--no-validation", action="store_true", help="sandbox without the spec files")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sw-bench-sync-", dir="/tmp"))
    os.environ["SENDWISE_HOME"] = str(home)
    os.environ.pop("WAREHOUSE_URL", None)
    from dagster_project.warehouse import embedded

    server = None
    try:
        server = run(args, home)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        embedded.stop(home / "pg")
        shutil.rmtree(home, ignore_errors=True)
    return 0


def run(args: argparse.Namespace, home: Path) -> subprocess.Popen:
    import httpx
    import psycopg

    from dagster_project.activation.resources import sandbox_command, sandbox_is_up
    from dagster_project.activation.sync import run_sync
    from dagster_project.settings import get_settings
    from dagster_project.warehouse.connection import ensure_schemas, libpq_url, warehouse_url

    settings = get_settings()
    url = warehouse_url(settings)
    ensure_schemas(url)
    started = time.perf_counter()
    contactable = build_marts(url, args.profiles)
    print(
        f"marts: {contactable} contactable profiles (+ non-contactable) built in "
        f"{time.perf_counter() - started:.1f}s"
    )

    port = free_port()
    specs_dir = None if args.no_validation else settings.esp_specs_dir
    command = sandbox_command(port, home / "esp_sandbox", specs_dir)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    while not sandbox_is_up(base_url):
        time.sleep(0.1)
    validation = httpx.get(f"{base_url}/__sandbox/health").json()["validating_against"]
    print(f"sandbox: {base_url}, validating against: {validation}")

    os.environ.update({"ESP_PROVIDER": "sandbox", "ESP_BASE_URL": base_url})
    from dagster_project.activation.resources import build_client

    with psycopg.connect(libpq_url(url)) as conn:
        plan = run_sync(conn, None, f"sandbox:{settings.esp_list_id or 'sendwise'}", "sendwise", dry_run=True)
        print(
            f"{'plan only (dry run)':>18}: {plan.duration_seconds:7.2f}s  to_add={len(plan.plan.to_add)} "
            f"(the planning part of the full sync)"
        )
        for label in ("full sync", "no-change resync", "1% changed resync"):
            if label.startswith("1%"):
                conn.execute(
                    "update marts.fct_customer_features set engagement_score = 0.5 "
                    "where customer_key like '%%00'"
                )  # every 100th customer
                conn.commit()
            client, target = build_client()
            result = run_sync(conn, client, target.destination, target.list_id)
            client.close()
            s = result.summary()
            rate = (s["added"] + s["updated"]) / result.duration_seconds if result.duration_seconds else 0
            print(
                f"{label:>18}: {result.duration_seconds:7.2f}s  added={s['added']} updated={s['updated']} "
                f"unchanged={s['unchanged']} failed={s['failed']} requests={s['requests']} "
                f"({rate:,.0f} profiles/s pushed)"
            )
    stats = httpx.get(f"{base_url}/__sandbox/stats").json()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine load average (1/5/15 min) at the end: {load} on {os.cpu_count()} cores")
    print(
        f"sandbox holds {stats['profiles']} profiles, list sizes {stats['lists']}, "
        f"{stats['request_count']} requests received"
    )
    return server


if __name__ == "__main__":
    raise SystemExit(main())
