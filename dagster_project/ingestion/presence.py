"""Which sources a user has: declared absent, or (file sources) no sub-folder in the source folder.

A shop-only user has no crm/, web/ or esp/ folder; those sources are absent, their assets load nothing
(logged with status `absent` in ops.load_log) and dbt builds on the empty raw tables.
"""

from __future__ import annotations

from pathlib import Path

from dagster_project.settings import SOURCES, Settings

FOLDERS = {"crm": "crm", "web": "web", "esp": "esp"}


def absence_reason(settings: Settings, source: str, source_dir: Path | None = None) -> str | None:
    """Why `source` is absent, or None when it is present (or may be: an unreachable shop is an error).

    `source_dir` overrides the settings' folder (the sources resource may name another one).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    if settings.source_absent(source):
        return "declared absent (SENDWISE_ABSENT_SOURCES / sources.absent)"
    if source == "shop":
        if settings.shop_url:
            return None
        from dagster_project.preflight import embedded_shop_exists

        return None if embedded_shop_exists(settings) else "SHOP_URL is unset and there is no embedded shop"
    if source == "esp" and settings.esp_events_source == "api":
        return None  # pulled from the ESP's API into esp/events before loading
    root = source_dir or settings.source_dir
    return None if (root / FOLDERS[source]).is_dir() else f"no {FOLDERS[source]}/ folder in {root}"


def absent_sources(settings: Settings) -> dict[str, str]:
    """Every absent source with the reason, in SOURCES order."""
    reasons = {source: absence_reason(settings, source) for source in SOURCES}
    return {source: why for source, why in reasons.items() if why}
