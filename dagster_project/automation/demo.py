"""`sendwise demo`: the whole pipeline, end to end, on the embedded warehouse and the synthetic world."""

from __future__ import annotations

import argparse
import sys
import time


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--customers", type=positive_int, default=10_000, help="size of the synthetic world")
    parser.add_argument(
        "--days", type=positive_int, default=120, help="days of history in the synthetic world"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic world")
    parser.add_argument("--regenerate", action="store_true", help="build a new world even if one exists")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _reset_local_state(settings) -> int:
    """A new world needs an empty warehouse and ESP sandbox: drop both (embedded warehouse only)."""
    import shutil

    from dagster_project.activation.esp_cli import stop as stop_sandbox
    from dagster_project.activation.resources import sandbox_state_dir
    from dagster_project.settings import WAREHOUSE_DATABASE
    from dagster_project.warehouse import embedded

    if settings.warehouse_url:
        _say("--regenerate resets the warehouse, which Sendwise only does to its embedded one; "
             "unset WAREHOUSE_URL or reset that warehouse yourself.")
        return 2
    _say("      --regenerate: dropping the embedded warehouse database and the ESP sandbox's state")
    embedded.drop_database(embedded.start(settings.pg_dir).url("postgres"), WAREHOUSE_DATABASE)
    state_dir = sandbox_state_dir(settings)
    stop_sandbox(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from dagster_project.automation import pipeline
    from dagster_project.automation.instance import ensure_dagster_home
    from dagster_project.automation.progress import quiet
    from dagster_project.automation.summary import run_summary
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    started = time.monotonic()
    settings = get_settings()
    ensure_dagster_home(settings)

    _say("[1/4] warehouse")
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    _say(f"      {url}")

    world_file = settings.ground_truth_dir / "world.json"
    if args.regenerate and world_file.exists():
        code = _reset_local_state(settings)
        if code:
            return code
        url = connection.warehouse_url(settings)
        connection.ensure_schemas(url)
    if args.regenerate or not world_file.exists():
        _say(f"[2/4] generating the synthetic world: {args.customers:,} customers x {args.days} days")
        from dagster_project.cli import main as cli_main

        command = ["generate", "--customers", str(args.customers), "--days", str(args.days),
                   "--seed", str(args.seed), "--out", str(settings.source_dir)]
        code = cli_main(command + (["--overwrite"] if args.regenerate else []))
        if code:
            return code
    else:
        _say(f"[2/4] reusing the synthetic world in {settings.source_dir} (--regenerate for a new one)")

    _say("[3/4] materializing every asset (Dagster runs, visible in the UI)")
    with quiet(settings.home / "logs" / "demo.log") as log_path:
        _say(f"      dbt's output and warnings: {log_path}")
        outcome = pipeline.materialize_everything(settings)

    _say("[4/4] summary")
    print(pipeline.summary_table(url))
    print()
    print(run_summary(url))
    print(f"Warehouse:   {url}")
    print(f"             psql \"{url}\"")
    print("Dagster UI:  make dev, then open http://127.0.0.1:3000 (runs of this demo are there)")
    print("ESP sandbox: .venv/bin/sendwise esp show <email>   (what the sandbox ESP received)")
    print(f"Finished in {time.monotonic() - started:.0f}s: "
          + ("all runs succeeded." if outcome.success else f"FAILED: {outcome.report()}"))
    return 0 if outcome.success else 1
