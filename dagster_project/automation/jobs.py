"""Jobs: the daily-partitioned event loads, and everything else in one run (so blocking checks block)."""

from __future__ import annotations

import dagster as dg

EVENT_ASSETS = dg.AssetSelection.assets(["raw", "web_events"], ["raw", "esp_events"])

ingest_events_job = dg.define_asset_job(
    "ingest_events",
    selection=EVENT_ASSETS,
    description="Load the web and ESP event files of the selected days (one partition per file date).",
)

build_everything_job = dg.define_asset_job(
    "build_everything",
    selection=dg.AssetSelection.all() - EVENT_ASSETS,
    description=(
        "Shop and CRM extraction, dbt build, quality checks, ML and ESP sync, in one run: a failing "
        "blocking check stops what is downstream of it."
    ),
)
