"""Health: the report asset and the alert sensors."""

import dagster as dg

from dagster_project.health.assets import health_report
from dagster_project.health.sensors import alert_on_run_failure, alert_on_stale_sources

defs = dg.Definitions(assets=[health_report], sensors=[alert_on_run_failure, alert_on_stale_sources])
