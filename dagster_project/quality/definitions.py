"""Data-quality asset checks (Great Expectations suites from `expectations/`) and the weekly full run."""

import dagster as dg

from dagster_project.quality.checks import quality_checks
from dagster_project.quality.full_checks import quality_full_checks, weekly_full_quality_checks

defs = dg.Definitions(
    asset_checks=quality_checks, jobs=[quality_full_checks], schedules=[weekly_full_quality_checks]
)
