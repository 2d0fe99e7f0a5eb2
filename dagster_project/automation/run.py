"""`sendwise run`: the whole pipeline on the configured sources (never generates anything)."""

from __future__ import annotations

import argparse
import time


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load every configured source (SHOP_URL, SENDWISE_SOURCE_DIR; see sendwise.toml), build the "
        "warehouse, run the checks and models and sync the ESP. Sources declared absent, or whose folder "
        "is missing, load nothing."
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project import preflight
    from dagster_project.automation import pipeline
    from dagster_project.ingestion.presence import absent_sources
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import SOURCES, get_settings

    started = time.monotonic()
    settings = get_settings()
    preflight.for_pipeline(settings)
    pipeline.say("[1/3] warehouse and sources")
    url = pipeline.prepare_warehouse(settings)
    pipeline.say(f"      warehouse {mask_url(url)}")
    absent = absent_sources(settings)
    for source, why in absent.items():
        pipeline.say(f"      source {source}: absent ({why}); it loads nothing")
    if len(absent) == len(SOURCES):
        pipeline.say("sendwise run: every source is absent; nothing to run (see sendwise check-sources)")
        return 2
    return pipeline.run_and_report(settings, url, started, step=2, steps=3)
