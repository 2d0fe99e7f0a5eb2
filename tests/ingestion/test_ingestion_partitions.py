"""The daily event partitions follow the data: they start at the earliest event file (or at
SENDWISE_EVENTS_START when set), read when the Definitions load, not at a date fixed in the code."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.ingestion.definitions import build_defs
from dagster_project.ingestion.partitions import (
    NO_FILES_START,
    available_partition_keys,
    events_partitions_def,
)
from dagster_project.settings import get_settings

FILES = {"web/events": ["2026-08-03", "2026-11-30"], "esp/events": ["2026-08-01", "2026-09-15"]}


@pytest.fixture
def source_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(tmp_path))
    monkeypatch.delenv("SENDWISE_EVENTS_START", raising=False)
    return tmp_path


def write_files(source_dir: Path) -> None:
    for folder, days in FILES.items():
        (source_dir / folder).mkdir(parents=True, exist_ok=True)
        for day in days:
            (source_dir / folder / f"{day}.jsonl").write_text("")
    (source_dir / "web/events/notes.jsonl").write_text("")  # not a date: ignored


def test_partitions_start_at_the_earliest_event_file(source_dir: Path) -> None:
    write_files(source_dir)
    keys = events_partitions_def(get_settings()).get_partition_keys()
    earliest = min(day for days in FILES.values() for day in days)
    assert keys[0] == earliest == "2026-08-01"
    today = datetime.now(UTC).date()
    assert len(keys) == (today - date.fromisoformat(earliest)).days + 1  # through today, nothing before
    assert available_partition_keys(get_settings()) == sorted(d for days in FILES.values() for d in days)


def test_the_setting_wins_when_set(source_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(source_dir)
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2026-09-01")
    assert events_partitions_def(get_settings()).get_partition_keys()[0] == "2026-09-01"
    # files before the configured start are not offered
    assert available_partition_keys(get_settings()) == ["2026-09-15", "2026-11-30"]


def test_without_event_files_the_range_waits_for_them(source_dir: Path) -> None:
    """Definitions loaded before any file exists (the demo generates its world in the same process):
    a fixed early start, so the files written next are inside the range and offered."""
    before = events_partitions_def(get_settings())
    assert before.get_first_partition_key() == NO_FILES_START
    write_files(source_dir)
    offered = available_partition_keys(get_settings())
    assert offered and set(offered) <= set(before.get_partition_keys())


def test_definitions_built_in_a_process_read_the_folder_then(source_dir: Path) -> None:
    write_files(source_dir)
    defs = build_defs(get_settings())
    web = defs.resolve_assets_def(dg.AssetKey(["raw", "web_events"]))
    assert web.partitions_def is not None
    assert web.partitions_def.get_first_partition_key() == "2026-08-01"
