"""`sendwise demo`: the whole pipeline, end to end, on the embedded warehouse and the synthetic world."""

from __future__ import annotations

import argparse
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
    from dagster_project.automation.pipeline import say

    say(message)


def _reset_local_state(settings) -> int:
    """A new world needs an empty warehouse and ESP sandbox: drop both (embedded warehouse only)."""
    import shutil

    from dagster_project.activation.esp_cli import stop as stop_sandbox
    from dagster_project.activation.resources import sandbox_state_dir
    from dagster_project.settings import WAREHOUSE_DATABASE
    from dagster_project.warehouse import embedded

    if settings.warehouse_url:
        _say(
            "--regenerate resets the warehouse, which Sendwise only does to its embedded one; "
            "unset WAREHOUSE_URL or reset that warehouse yourself."
        )
        return 2
    _say("      --regenerate: dropping the embedded warehouse database and the ESP sandbox's state")
    embedded.drop_database(embedded.start(settings.pg_dir).url("postgres"), WAREHOUSE_DATABASE)
    state_dir = sandbox_state_dir(settings)
    stop_sandbox(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from dagster_project import preflight
    from dagster_project.automation import pipeline
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import get_settings
    from dagster_project.synthetic.ownership import check_world_target

    started = time.monotonic()
    settings = get_settings()
    preflight.for_pipeline(settings)
    world_file = settings.ground_truth_dir / "world.json"
    new_world = args.regenerate or not world_file.exists()
    if new_world:  # refuse before anything is dropped or written: only Sendwise's own folder and shop
        check_world_target(settings.source_dir, settings.shop_url)

    _say("[1/4] warehouse")
    url = pipeline.prepare_warehouse(settings)
    _say(f"      {mask_url(url)}")

    if args.regenerate and world_file.exists():
        code = _reset_local_state(settings)
        if code:
            return code
        url = pipeline.prepare_warehouse(settings)
    if new_world:
        _say(f"[2/4] generating the synthetic world: {args.customers:,} customers x {args.days} days")
        from dagster_project.cli import main as cli_main

        command = ["generate", "--customers", str(args.customers), "--days", str(args.days),
                   "--seed", str(args.seed), "--out", str(settings.source_dir)]  # fmt: skip
        code = cli_main(command + (["--overwrite"] if args.regenerate else []))
        if code:
            return code
    else:
        _say(f"[2/4] reusing the synthetic world in {settings.source_dir} (--regenerate for a new one)")
    return pipeline.run_and_report(settings, url, started, step=3, steps=4)
