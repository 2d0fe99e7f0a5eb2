"""A day, a CRM page or an export fails alone (issue 11 items 4, 8, 11, 12): the others load and are
logged, the failed part is named with its reason, and its mark does not move past it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from ingestion_helpers import (
    contact,
    create_shop,
    esp_event,
    query,
    scalar,
    web_event,
    write_crm_export,
    write_events,
)

from dagster_project.ingestion import loaders, upserts
from dagster_project.ingestion.assets import finish
from dagster_project.ingestion.definitions import build_defs
from dagster_project.ingestion.sources import SourcesResource
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]


@pytest.fixture
def sources(warehouse_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source_dir = tmp_path / "world"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source_dir))
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2024-12-01")
    create_shop(shop_url, customers=1)
    write_crm_export(source_dir, "2025-01-01", [[contact(1)]])
    for day in DAYS:
        write_events(source_dir, day, web=[web_event(f"{day}-w", day)], esp=[esp_event(f"{day}-e", day)])
    return source_dir


def failures(results: list[dg.ExecuteInProcessResult]) -> dict[str, str]:
    """Step key -> description of the dg.Failure it raised."""
    found = {}
    for result in results:
        for event in result.all_events:
            if event.is_step_failure:
                data = event.step_failure_data
                description = data.user_failure_data.description if data.user_failure_data else None
                found[event.step_key] = description or data.error.message
    return found


def materialize_events(days: list[str]) -> dg.ExecuteInProcessResult:
    assets = [a for a in build_defs(get_settings()).assets or [] if a.partitions_def]
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    resources = {"warehouse": WarehouseResource(), "sources": SourcesResource()}
    return dg.materialize(assets, tags=tags, resources=resources, raise_on_error=False)


def test_a_failed_day_does_not_stop_the_others_and_is_named(sources: Path, warehouse_url: str) -> None:
    broken = sources / "esp" / "events" / f"{DAYS[0]}.jsonl"
    broken.unlink()
    broken.mkdir()  # unreadable as a file: the load of that day fails

    failed = failures([materialize_events(DAYS)])

    assert list(failed) == ["raw__esp_events"]
    assert failed["raw__esp_events"].startswith(
        f"raw/esp_events: 1 of 3 parts failed; {DAYS[0]}: IsADirectoryError: [Errno 21] Is a directory"
    )
    days = [r[0] for r in query(warehouse_url, "select _file_date::text from raw.esp_events order by 1")]
    assert days == DAYS[1:]
    logged = query(
        warehouse_url,
        "select partition_key, status, received, loaded from ops.load_log where stream = 'esp_events' "
        "order by 1",
    )
    assert logged == [(DAYS[0], "failed", 0, 0), (DAYS[1], "success", 1, 1), (DAYS[2], "success", 1, 1)]
    assert scalar(warehouse_url, "select count(*) from raw.web_events") == 3

    broken.rmdir()
    write_events(
        sources, DAYS[0], web=[web_event(f"{DAYS[0]}-w", DAYS[0])], esp=[esp_event("fixed", DAYS[0])]
    )
    assert failures([materialize_events(DAYS)]) == {}
    assert scalar(warehouse_url, "select count(*) from raw.esp_events") == 3


def test_a_failed_load_logs_no_rolled_back_counts(
    sources: Path, warehouse_url: str, shop_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("power cut after COPY\nsecond line")

    monkeypatch.setattr(loaders, "record_load", crash)
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        with pytest.raises(RuntimeError):
            upserts.load_shop_table(conn, shop_url, loaders.SHOP_TABLES["customers"])
        with pytest.raises(RuntimeError):
            upserts.load_crm_contacts(conn, sources)
        results = loaders.load_event_partitions(conn, loaders.WEB_EVENTS, sources, DAYS[:2])
        with pytest.raises(dg.Failure) as raised:
            finish(conn, "web_events", results)

    assert raised.value.description == (
        f"raw/web_events: 2 of 2 parts failed; {DAYS[0]}: RuntimeError: power cut after COPY; "
        f"{DAYS[1]}: RuntimeError: power cut after COPY"
    )
    assert raised.value.metadata["rows_loaded"].value == 0
    counts = query(
        warehouse_url,
        "select distinct received, loaded, quarantined, written, high_water_mark from ops.load_log "
        "where status = 'failed'",
    )
    assert counts == [(0, 0, 0, 0, None)]
    assert scalar(warehouse_url, "select count(*) from ops.load_log where status = 'failed'") == 4


def load_crm(url: str, source_dir: Path) -> loaders.LoadResult:
    with loaders.connect(url) as conn:
        loaders.ensure_tables(conn)
        return upserts.load_crm_contacts(conn, source_dir)


def test_an_unreadable_crm_page_fails_alone_and_its_export_is_retried(
    sources: Path, warehouse_url: str
) -> None:
    write_crm_export(sources, "2025-01-01", [[contact(1), contact(2)], [contact(3)]])
    write_crm_export(sources, "2025-01-02", [[contact(4)]])
    bad_page = sources / "crm/contacts/2025-01-01/page-00002.json"
    good_text = bad_page.read_text()
    bad_page.write_text(good_text[:-20])  # cut short while being copied

    first = load_crm(warehouse_url, sources)

    assert first.status == "partial" and first.parts == 3
    assert first.failures == [
        "crm/contacts/2025-01-01/page-00002.json: unreadable export page: bad JSON: unexpected end of data: "
        "line 1 column 374 (char 373)"
    ]
    contacts = [r[0] for r in query(warehouse_url, "select contact_id from raw.crm_contacts order by 1")]
    assert contacts == ["crm-0000001", "crm-0000002", "crm-0000004"]
    mark = "select high_water_mark from ops.load_state where stream = 'crm_contacts' and partition_key = ''"
    assert scalar(warehouse_url, mark) is None
    logged = "select status, error from ops.load_log where stream = 'crm_contacts'"
    assert query(warehouse_url, logged) == [("partial", first.failures[0])]

    bad_page.write_text(good_text)
    second = load_crm(warehouse_url, sources)
    assert (second.status, second.received, second.failures) == ("success", 3, [])  # 2025-01-02 not reread
    contacts = [r[0] for r in query(warehouse_url, "select contact_id from raw.crm_contacts order by 1")]
    assert contacts == ["crm-0000001", "crm-0000002", "crm-0000003", "crm-0000004"]
    assert scalar(warehouse_url, mark) == "2025-01-02"
    assert scalar(warehouse_url, "select count(*) from ops.quarantine where stream = 'crm_contacts'") == 0
    assert load_crm(warehouse_url, sources).received == 0
