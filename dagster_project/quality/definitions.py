"""Data-quality asset checks (Great Expectations suites from `expectations/`)."""

import dagster as dg

from dagster_project.quality.checks import quality_checks

defs = dg.Definitions(asset_checks=quality_checks)
