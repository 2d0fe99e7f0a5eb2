"""The local Dagster instance: DAGSTER_HOME under `.sendwise/dagster`, telemetry off, a run queue."""

from __future__ import annotations

import os
from pathlib import Path

from dagster_project.settings import Settings, get_settings

MAX_CONCURRENT_RUNS = 2  # more runs at once only contend for the cores and the warehouse
_DAGSTER_YAML = f"""\
telemetry:
  enabled: false
# Runs launched by sensors and schedules wait in the queue: at most this many run at once.
concurrency:
  runs:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
"""
_EARLIER_DEFAULTS = ("telemetry:\n  enabled: false\n",)  # what earlier versions wrote: upgraded


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """Point DAGSTER_HOME at Sendwise's folder (unless the user set one) and make sure it is usable.

    A dagster.yaml the user wrote is left alone; Sendwise's own (earlier) default is upgraded.
    """
    settings = settings or get_settings()
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() in _EARLIER_DEFAULTS:
        config.write_text(_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
