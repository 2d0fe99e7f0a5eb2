"""How much do the data-quality checks add to a pipeline run?

Two modes:

  pipeline (default): generate a synthetic world (or reuse the one under --home), run the whole
      pipeline in process exactly like `sendwise demo` (event loads, then build-everything with the
      quality checks), then read from the Dagster instance how long the quality check steps took
      vs the two runs end to end. Then re-validates every suite once more, warm, to time GX alone.

  checks: on the warehouse a pipeline run left under --home, time every suite once in a fresh
      process as the check steps do (GX import, validation, Data Docs, summary); with
      --pipeline-seconds (the end-to-end time without the checks) it prints the overhead.

  synthetic: no pipeline; builds the guarded tables at the size of a world with --customers
      customers straight in SQL, and times every suite's validation (to read against an
      end-to-end time measured elsewhere).

    .venv/bin/python bench/quality.py --customers 100000 --days 60 --home /tmp/swq-bench
    .venv/bin/python bench/quality.py --mode synthetic --customers 100000

Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("pipeline", "checks", "synthetic"), default="pipeline")
    parser.add_argument("--pipeline-seconds", type=float, help="checks mode: end-to-end time without checks")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--home", type=Path, default=Path("/tmp/sendwise-bench-quality"))
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    os.environ["SENDWISE_HOME"] = str(args.home.resolve())
    os.environ.pop("WAREHOUSE_URL", None)
    os.environ.pop("SHOP_URL", None)
    if args.mode == "pipeline":
        return bench_pipeline(args)
    if args.mode == "checks":
        return bench_checks(args)
    return bench_synthetic(args)


def bench_checks(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from dagster_project.quality import gx_runner
    from dagster_project.quality.suites import load_suites
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    url = connection.warehouse_url(settings)
    print(f"import of GX: {time.perf_counter() - started:.1f} s")
    run_id = f"bench-checks-{uuid.uuid4().hex[:8]}"
    for suite in load_suites():
        t0 = time.perf_counter()
        outcome = gx_runner.run_suite(suite, url, run_id, settings, build_docs=True)
        failed = [o.check for o in outcome.outcomes if not o.success]
        rows = outcome.row_count or 0
        print(f"  {suite.name:<28} rows {rows:>10,}  {time.perf_counter() - t0:6.2f} s  failed: {failed}")
    total = time.perf_counter() - started
    print(f"all suites as the check steps run them: {total:.1f} s")
    if args.pipeline_seconds:
        print(
            f"overhead vs {args.pipeline_seconds:.0f} s of pipeline without checks: "
            f"{100 * total / args.pipeline_seconds:.1f} %"
        )
    return 0


def bench_pipeline(args: argparse.Namespace) -> int:
    import dagster as dg

    from dagster_project.automation import pipeline
    from dagster_project.cli import main as cli_main
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    world_file = settings.ground_truth_dir / "world.json"
    if not world_file.exists():
        started = time.perf_counter()
        code = cli_main(
            [
                "generate",
                "--customers",
                str(args.customers),
                "--days",
                str(args.days),
                "--out",
                str(settings.source_dir),
            ]
        )
        if code:
            return code
        seconds = time.perf_counter() - started
        print(f"generated the world ({args.customers:,} customers, {args.days} days) in {seconds:.0f} s")
    else:
        print(f"reusing the world in {settings.source_dir}")

    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    outcome = pipeline.materialize_everything(settings, instance=instance, run_config={})
    end_to_end = time.perf_counter() - started
    print(f"pipeline: {'ok' if outcome.success else 'FAILED: ' + outcome.message} in {end_to_end:.1f} s")

    check_seconds: dict[str, float] = {}
    for run_id in outcome.run_ids:
        for step in instance.get_run_step_stats(run_id):
            if step.step_key.startswith("quality__") and step.end_time and step.start_time:
                check_seconds[step.step_key] = (
                    check_seconds.get(step.step_key, 0.0) + step.end_time - step.start_time
                )
    validation = sum(check_seconds.values())
    print()
    print("quality check steps inside the pipeline runs (s):")
    for key, seconds in sorted(check_seconds.items()):
        print(f"  {key:<40} {seconds:7.2f}")
    print(f"  {'total':<40} {validation:7.2f}")
    _print_table_sizes(url)
    warm = _time_suites(url, settings)
    print()
    print(f"end-to-end (both runs):           {end_to_end:8.1f} s")
    print(f"quality check steps:              {validation:8.1f} s")
    print(f"pipeline without the checks:      {end_to_end - validation:8.1f} s")
    print(f"overhead of the checks:           {100 * validation / max(end_to_end - validation, 1e-9):8.1f} %")
    print(f"warm GX validation of all suites: {warm:8.1f} s (no Dagster, no Data Docs)")
    return 0 if outcome.success else 1


def bench_synthetic(args: argparse.Namespace) -> int:
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    started = time.perf_counter()
    _build_synthetic_tables(url, args.customers, args.days)
    print(f"built synthetic tables for {args.customers:,} customers in {time.perf_counter() - started:.1f} s")
    _print_table_sizes(url)
    _time_suites(url, settings)
    print("no end-to-end run in this mode: compare the total with a pipeline run of the same size")
    return 0


def _time_suites(url: str, settings) -> float:
    started = time.perf_counter()
    from dagster_project.quality import gx_runner
    from dagster_project.quality.suites import load_suites

    print(f"\nimport of GX: {time.perf_counter() - started:.1f} s")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    total = 0.0
    print("warm validation per suite (s), with Data Docs / without:")
    for suite in load_suites():
        t0 = time.perf_counter()
        outcome = gx_runner.run_suite(suite, url, run_id + "-docs", settings, build_docs=True)
        with_docs = time.perf_counter() - t0
        t0 = time.perf_counter()
        gx_runner.run_suite(suite, url, run_id, settings, build_docs=False)
        without = time.perf_counter() - t0
        total += without
        failed = [o.check for o in outcome.outcomes if not o.success]
        rows = outcome.row_count or 0
        print(f"  {suite.name:<28} rows {rows:>10,}  {with_docs:6.2f}  {without:6.2f}  failed: {failed}")
    return total


def _print_table_sizes(url: str) -> None:
    import sqlalchemy as sa

    from dagster_project.quality.suites import load_suites
    from dagster_project.warehouse import connection

    engine = connection.create_engine(url)
    with engine.connect() as conn:
        print("\nguarded tables:")
        for suite in load_suites():
            exists = conn.execute(sa.text("select to_regclass(:t)"), {"t": suite.qualified_table}).scalar()
            count = (
                conn.execute(sa.text(f"select count(*) from {suite.qualified_table}")).scalar()
                if exists
                else None
            )
            print(f"  {suite.qualified_table:<32} {count if count is not None else 'missing':>12}")
    engine.dispose()


def _build_synthetic_tables(url: str, customers: int, days: int) -> None:
    """The guarded tables at a realistic size (ratios from a generated world: per customer about 6
    orders, 14 ESP events and 24 web events per 30 days), clean, in the contract's shapes."""
    import psycopg

    from dagster_project.ingestion import loaders
    from dagster_project.warehouse import connection

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quality"))
    from quality_world import world_sql

    with psycopg.connect(connection.libpq_url(url)) as conn:
        for table in (
            "marts.dim_customers",
            "marts.fct_customer_features",
            "ml.customer_segments",
            "ml.send_time_predictions",
        ):
            conn.execute(f"drop table if exists {table}")
        loaders.ensure_tables(conn)
        for table in (
            "raw.shop_customers",
            "raw.shop_orders",
            "raw.esp_events",
            "raw.web_events",
            "ops.load_log",
            "ops.quarantine",
        ):
            conn.execute(f"truncate {table}")
        scale = days / 30
        conn.execute(
            world_sql(
                customers=customers,
                orders=int(6 * customers * scale),
                esp_events=int(14 * customers * scale),
                web_events=int(24 * customers * scale),
                hours=days * 24,
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
