"""Scale: the full pipeline and then one new day, at two world sizes, timed per step.

    .venv/bin/python bench/scale.py                                  # 10k and 30k customers x 7 days
    .venv/bin/python bench/scale.py --sizes 10000 100000 --days 30 --out /tmp/scale.md

For each size: generates a synthetic world in a scratch SENDWISE_HOME (its own embedded Postgres and
ESP sandbox), runs the full pipeline (every event day, then extraction of shop/CRM, dbt build, quality
checks, ML and ESP sync, as `sendwise demo` does), extends the world by one day and runs what the daily
schedule and its sensor run (load the new day's files, then build everything). Steps are grouped from
Dagster's step timings. Prints per step: full, one new day, new day / full, and the growth of each
between the smallest and the largest size (equal to the size ratio = linear), plus peak RSS and the
warehouse size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = ("extraction", "dbt build", "quality checks", "ML", "ESP sync", "other")


def step_group(step_key: str) -> str:
    """The bench row a Dagster step belongs to (asset op names: raw__*, quality__*, ml__*, ...)."""
    if step_key.startswith("raw__"):
        return "extraction"
    if "dbt" in step_key:
        return "dbt build"
    if step_key.startswith("quality__"):
        return "quality checks"
    if step_key.startswith("ml__") or step_key == "customer_segments":
        return "ML"
    if step_key.startswith("activation__"):
        return "ESP sync"
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000], help="customers per world")
    parser.add_argument("--days", type=int, default=7, help="days of history before the new day")
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (and their servers)")
    args = parser.parse_args()

    results = {}
    for customers in args.sizes:
        print(f"\n===== {customers:,} customers x {args.days} days, then 1 new day", flush=True)
        results[customers] = bench_size(customers, args)
        # printed at once too: a later, larger size may fail or be stopped
        print("\n" + render({customers: results[customers]}, args.days), flush=True)
    table = render(results, args.days)
    print("\n" + table)
    if args.out:
        args.out.write_text(table + "\n")
        print(f"written to {args.out}")
    return 0 if all(r["ok"] for r in results.values()) else 1


def bench_size(customers: int, args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"sw-scale-{customers // 1000}k-", dir="/tmp"))
    env_before = dict(os.environ)
    os.environ["SENDWISE_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    for name in ("WAREHOUSE_URL", "SHOP_URL", "SENDWISE_SOURCE_DIR"):
        os.environ.pop(name, None)
    os.environ["SENDWISE_EVENTS_START"] = args.start
    try:
        return run_size(customers, args)
    finally:
        if not args.keep:
            from dagster_project.activation.esp_cli import stop as stop_sandbox
            from dagster_project.activation.resources import sandbox_state_dir
            from dagster_project.settings import get_settings
            from dagster_project.warehouse import embedded

            stop_sandbox(sandbox_state_dir(get_settings()))
            embedded.stop(home / "pg")
            shutil.rmtree(home, ignore_errors=True)
        os.environ.clear()
        os.environ.update(env_before)


def generate(customers: int, days: int, start: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "dagster_project.cli", "generate", "--customers", str(customers),
               "--days", str(days), "--start", start, "--quiet"]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - started


def run_size(customers: int, args: argparse.Namespace) -> dict:
    import dagster as dg

    from dagster_project.automation.instance import ensure_dagster_home
    from dagster_project.ingestion.partitions import available_partition_keys, changed_partition_keys
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    ensure_dagster_home(settings)
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    result: dict = {"ok": True, "generate_s": generate(customers, args.days, args.start)}
    print(f"generated in {result['generate_s']:.0f}s", flush=True)
    instance = dg.DagsterInstance.get()

    full = run_pipeline(instance, available_partition_keys(settings))
    result["full"], result["ok"] = full["steps"], result["ok"] and full["ok"]
    print(f"full run: {full['wall_s']:.0f}s {full['message']}", flush=True)

    new_day = (dt.date.fromisoformat(args.start) + dt.timedelta(days=args.days)).isoformat()
    result["generate_day_s"] = generate(customers, 1, new_day)
    incremental = run_pipeline(instance, changed_partition_keys(settings, url))
    result["incremental"], result["ok"] = incremental["steps"], result["ok"] and incremental["ok"]
    print(f"new day run: {incremental['wall_s']:.0f}s {incremental['message']}", flush=True)
    result["warehouse_bytes"] = warehouse_bytes(url)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_pipeline(instance, days: list[str]) -> dict:
    """The event load of `days` (one run), then everything else (a second run), as the sensors chain them."""
    import dagster as dg

    from dagster_project.automation.pipeline import PROGRESS_RUN_CONFIG
    from dagster_project.definitions import defs

    started = time.perf_counter()
    steps = dict.fromkeys(STEPS, 0.0)
    runs = []
    if days:
        tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
        runs.append(("ingest_events", tags))
    runs.append(("build_everything", {}))
    for job, tags in runs:
        outcome = defs.resolve_job_def(job).execute_in_process(
            instance=instance, run_config=PROGRESS_RUN_CONFIG, tags=tags, raise_on_error=False
        )
        for stats in instance.get_run_step_stats(outcome.run_id):
            if stats.start_time and stats.end_time:
                steps[step_group(stats.step_key)] += stats.end_time - stats.start_time
        blocking = [e for e in outcome.get_asset_check_evaluations()
                    if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]  # fmt: skip
        failure = f"FAILED: {job}: {step_errors(outcome)}" if not outcome.success else ""
        failure = failure or (f"FAILED: {len(blocking)} blocking checks" if blocking else "")
        if failure:
            return {"ok": False, "message": failure, "steps": steps, "wall_s": time.perf_counter() - started}
    steps["total"] = time.perf_counter() - started
    return {"ok": True, "message": "ok", "steps": steps, "wall_s": steps["total"]}


def step_errors(outcome) -> str:
    errors = [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()[:2000]}"
        for event in outcome.all_events
        if event.is_step_failure and event.step_failure_data.error is not None
    ]
    return "; ".join(errors) or "no step failure recorded"


def warehouse_bytes(url: str) -> int:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_database_size(current_database())")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def peak_rss_mb() -> float:
    """Largest RSS of this process and of any subprocess it waited for (dbt, the generator), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def render(results: dict[int, dict], days: int) -> str:
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    header = "| step |"
    rule = "|---|"
    for size in sizes:
        label = f"{size // 1000}k" if size >= 1000 else str(size)
        header += f" {label} full s | {label} new day s | new day / full |"
        rule += "---:|---:|---:|"
    if len(sizes) > 1:
        header += f" growth full {small // 1000}k->{large // 1000}k | growth new day |"
        rule += "---:|---:|"
    title = f"{days} days of history + 1 new day"
    if len(sizes) > 1:
        title += f"; growth = large / small (linear: {large / small:.1f})"
    lines = [title, "", header, rule]
    for step in (*STEPS, "total"):
        row = f"| {step} |"
        for size in sizes:
            full, new = results[size]["full"].get(step, 0.0), results[size]["incremental"].get(step, 0.0)
            row += f" {full:.1f} | {new:.1f} | {ratio(new, full)} |"
        if len(sizes) > 1:
            for run in ("full", "incremental"):
                row += f" {ratio(results[large][run].get(step, 0.0), results[small][run].get(step, 0.0))} |"
        lines.append(row)
    lines.append("")
    for size in sizes:
        r = results[size]
        lines.append(
            f"{size:,} customers: generator {r['generate_s']:.0f}s (+1 day {r['generate_day_s']:.0f}s), "
            f"warehouse {r['warehouse_bytes'] / 1e9:.2f} GB, peak RSS {r['peak_rss_mb']:.0f} MB"
            f"{'' if r['ok'] else ', a run FAILED'}"
        )
    return "\n".join(lines)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator > 0 else "-"


if __name__ == "__main__":
    sys.exit(main())
