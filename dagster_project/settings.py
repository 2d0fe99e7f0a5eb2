"""Every setting Sendwise reads from the environment, in one place.

Read at run time through `get_settings()`, never at import time, so that tests and the CLI can
change the environment before anything runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

WAREHOUSE_DATABASE = "sendwise"
SHOP_DATABASE = "sendwise_shop"


@dataclass(frozen=True)
class Settings:
    home: Path
    """Where Sendwise keeps its local state: embedded Postgres, world files, models, reports."""
    warehouse_url: str | None
    """A Postgres URL; when unset, the embedded warehouse under `home/pg` is used."""
    source_dir: Path
    """Folder holding the file sources (CRM exports, web and ESP event files)."""
    shop_url: str | None
    """SQLAlchemy URL of the shop's OLTP database; unset means the embedded `sendwise_shop`."""
    esp_provider: str
    esp_api_key: str | None
    esp_list_id: str | None
    esp_base_url: str | None
    esp_specs_dir: Path = PROJECT_ROOT.parent / "shared" / "esp-specs"
    """Read-only OpenAPI specs of the ESPs (never copied into the repo); `ESP_SPECS_DIR` overrides."""
    events_start: str = "2025-01-01"
    """First day (YYYY-MM-DD) of the daily partitions of the web and ESP event assets."""
    quality_max_shrink: float | None = None
    """Data quality: overrides every suite's allowed row-count shrink vs the previous run (0..1)."""
    quality_max_quarantine_share: float | None = None
    """Data quality: overrides every suite's allowed share of quarantined rows per stream (0..1)."""
    freshness_reference: str = "data"
    """Freshness checks measure against: `data` (newest event across feeds), `now`, or an ISO time."""
    esp_events_source: str = "files"
    """Where ESP engagement comes from: `files` (esp/events/*.jsonl) or `api` (pulled from the ESP first)."""
    alert_webhook_url: str | None = None
    """Where run-failure and stale-source alerts are POSTed as JSON (`{"text": ...}`); unset: no alerts."""

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def ground_truth_dir(self) -> Path:
        return self.source_dir / "ground_truth"


def get_settings() -> Settings:
    home = Path(os.environ.get("SENDWISE_HOME") or PROJECT_ROOT / ".sendwise").resolve()
    return Settings(
        home=home,
        warehouse_url=os.environ.get("WAREHOUSE_URL") or None,
        source_dir=Path(os.environ.get("SENDWISE_SOURCE_DIR") or home / "world").resolve(),
        shop_url=os.environ.get("SHOP_URL") or None,
        esp_provider=os.environ.get("ESP_PROVIDER", "sandbox"),
        esp_api_key=os.environ.get("ESP_API_KEY") or None,
        esp_list_id=os.environ.get("ESP_LIST_ID") or None,
        esp_base_url=os.environ.get("ESP_BASE_URL") or None,
        esp_specs_dir=Path(os.environ.get("ESP_SPECS_DIR") or PROJECT_ROOT.parent / "shared" / "esp-specs"),
        events_start=os.environ.get("SENDWISE_EVENTS_START") or "2025-01-01",
        quality_max_shrink=_optional_float(os.environ.get("SENDWISE_QUALITY_MAX_SHRINK")),
        quality_max_quarantine_share=_optional_float(os.environ.get("SENDWISE_QUALITY_MAX_QUARANTINE_SHARE")),
        freshness_reference=os.environ.get("SENDWISE_FRESHNESS_REFERENCE") or "data",
        esp_events_source=os.environ.get("SENDWISE_ESP_EVENTS_SOURCE") or "files",
        alert_webhook_url=os.environ.get("SENDWISE_ALERT_WEBHOOK_URL") or None,
    )


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None
