"""The local Dagster instance: DAGSTER_HOME under `.sendwise/dagster`, telemetry off."""

from __future__ import annotations

import os
from pathlib import Path

from dagster_project.settings import Settings, get_settings

_DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """Point DAGSTER_HOME at Sendwise's folder (unless the user set one) and make sure it is usable."""
    settings = settings or get_settings()
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
