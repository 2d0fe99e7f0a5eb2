"""Extraction against small hand-written sources: incremental loads, quarantine, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest
from field_tokens import decrypt, email_token
from ingestion_helpers import (
    contact,
    create_shop,
    esp_event,
    execute,
    materializations,
    materialize_raw,
    query,
    raw_counts,
    scalar,
    web_event,
    write_crm_export,
    write_events,
    write_jsonl,
)

from dagster_project.ingestion import loaders, upserts
from dagster_project.ingestion.partitions import changed_partition_keys
from dagster_project.ingestion.sources import SourcesResource
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

DAYS = ["2025-01-01", "2025-01-02"]
FIRST_LOAD = {
    "shop_customers": 5, "shop_products": 2, "shop_orders": 1, "shop_order_items": 2, "crm_contacts": 3,
    "web_events": 6, "esp_events": 4,
}  # fmt: skip


@pytest.fixture
def sources(warehouse_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source_dir = tmp_path / "world"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source_dir))
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2024-12-01")
    create_shop(shop_url)
    write_crm_export(source_dir, "2025-01-01", [[contact(1), contact(2)], [contact(3)]])
    for day in DAYS:
        write_events(
            source_dir,
            day,
            web=[web_event(f"{day}-w{i}", day) for i in range(3)],
            esp=[esp_event(f"{day}-e{i}", day) for i in range(2)],
        )
    return source_dir


def test_first_load_lands_everything_with_load_metadata(sources: Path, warehouse_url: str) -> None:
    metadata = materializations(materialize_raw(DAYS))

    assert raw_counts(warehouse_url) == FIRST_LOAD
    assert scalar(warehouse_url, "select count(*) from raw.web_events where _batch_id is null") == 0
    files = query(
        warehouse_url, "select distinct _file_date::text, _source_file from raw.esp_events order by 1"
    )
    assert files == [(d, f"esp/events/{d}.jsonl") for d in DAYS]
    web = query(
        warehouse_url, "select user_agent, page_path, properties->>'title' from raw.web_events limit 1"
    )
    assert web == [("Mozilla/5.0", "/home", "Home")]
    assert metadata["raw/web_events"]["rows_received"] == 6
    assert metadata["raw/web_events"]["rows_loaded"] == 6
    assert metadata["raw/web_events"]["high_water_mark"] == "2025-01-02"
    assert metadata["raw/shop_customers"]["high_water_mark"].startswith("2025-01-03T10:00:00")
    assert metadata["raw/crm_contacts"]["high_water_mark"] == "2025-01-01"
    assert "crm-0000001" in metadata["raw/crm_contacts"]["preview"]
    logged = query(warehouse_url, "select stream, received, loaded, quarantined, status from ops.load_log")
    assert ("shop_orders", 1, 1, 0, "success") in logged
    assert len(logged) == 4 + 1 + 2 * len(DAYS)
    # each load analysed its table (a never-analysed table has reltuples -1): the planner knows the rows
    tables = "select relname, reltuples from pg_class where relnamespace = 'raw'::regnamespace"
    analysed = dict(query(warehouse_url, tables))
    assert {table: analysed[table] for table in FIRST_LOAD} == FIRST_LOAD


def test_rerun_adds_nothing_and_later_changes_are_upserted(
    sources: Path, warehouse_url: str, shop_url: str
) -> None:
    materialize_raw(DAYS)
    second = materializations(materialize_raw(DAYS))

    assert raw_counts(warehouse_url) == FIRST_LOAD
    assert {key: m["rows_received"] for key, m in second.items()} == {key: 0 for key in second}
    assert len(second) == 7

    execute(
        shop_url,
        "update shop.customers set email = 'new@example.com', updated_at = '2025-02-01' where customer_id=1",
    )
    write_crm_export(
        sources,
        "2025-01-05",
        [[contact(2, "2025-01-05T00:00:00+00:00", last_name="Smith"), contact(4),
          contact(3, "2024-12-15T00:00:00+00:00", last_name="Older")]],
    )  # fmt: skip
    third = materializations(materialize_raw(DAYS))

    assert third["raw/shop_customers"]["rows_received"] == 1
    assert third["raw/shop_products"]["rows_received"] == 0
    assert (
        decrypt(scalar(warehouse_url, "select email_encrypted from raw.shop_customers where customer_id = 1"))
        == "new@example.com"
    )
    assert third["raw/crm_contacts"]["rows_received"] == 3
    names = dict(query(warehouse_url, "select contact_id, last_name from raw.crm_contacts"))
    assert names == {"crm-0000001": "Lee", "crm-0000002": "Smith", "crm-0000003": "Lee", "crm-0000004": "Lee"}
    assert raw_counts(warehouse_url)["shop_customers"] == 5


def test_changed_day_file_replaces_only_that_day_and_missing_day_loads_nothing(
    sources: Path, warehouse_url: str
) -> None:
    materialize_raw(DAYS)
    write_events(sources, DAYS[0], web=[web_event("late-1", DAYS[0])], esp=[])

    metadata = materializations(materialize_raw([DAYS[0], "2025-01-03"]))

    by_day = dict(query(warehouse_url, "select _file_date::text, count(*) from raw.web_events group by 1"))
    assert by_day == {DAYS[0]: 1, DAYS[1]: 3}
    assert scalar(warehouse_url, "select count(*) from raw.esp_events") == 2
    assert metadata["raw/web_events"]["rows_loaded"] == 1
    statuses = query(
        warehouse_url,
        "select partition_key, status from ops.load_log where stream = 'web_events' "
        "and partition_key in ('2025-01-01', '2025-01-03') order by started_at desc limit 2",
    )
    assert sorted(statuses) == [("2025-01-01", "success"), ("2025-01-03", "missing")]


def test_malformed_records_are_quarantined_with_reasons_and_counted(
    sources: Path, warehouse_url: str, shop_url: str
) -> None:
    day = DAYS[0]
    write_jsonl(
        sources / "web" / "events" / f"{day}.jsonl",
        [
            web_event("ok-1", day),
            '{"messageId": "broken", "type": "page"',
            web_event("no-ts", day, timestamp=None),
            web_event("bad-ts", day, timestamp="yesterday at noon"),
            web_event("bad-props", day, properties="not an object"),
            {k: v for k, v in web_event("x", day).items() if k != "messageId"},
            web_event("ok-2", day, type="track", event="Product Viewed"),
        ],
    )
    write_jsonl(
        sources / "esp" / "events" / f"{day}.jsonl",
        [esp_event("e-ok", day), esp_event("e-bad", day, event_type="opened")],
    )
    write_crm_export(
        sources,
        "2025-01-01",
        [[contact(1), contact(2, email_opt_in="yes"), {"email": "no-id@example.com"}], [contact(3)]],
    )
    execute(shop_url, "insert into shop.orders values (11, 1, 'completed', 5, 'EUR', now(), now(), null)")

    metadata = materializations(materialize_raw([day]))

    quarantined = [
        (stream, location, "bad JSON" if reason.startswith("bad JSON: ") else reason)
        for stream, location, reason in query(
            warehouse_url, "select stream, source_location, reason from ops.quarantine order by 1, 2"
        )
    ]
    web_file = f"web/events/{day}.jsonl"
    assert quarantined == [
        ("crm_contacts", "crm/contacts/2025-01-01/page-00001.json#results[1]",
         "'email_opt_in' should be true/false, got str 'yes'"),
        ("crm_contacts", "crm/contacts/2025-01-01/page-00001.json#results[2]", "missing required key 'id'"),
        ("esp_events", f"esp/events/{day}.jsonl:2",
         "'event_type' is 'opened', expected one of bounce, click, delivered, open, sent, spam_complaint, "
         "unsubscribe"),
        ("shop_orders", "shop.orders:order_id=11", "missing required column 'updated_at'"),
        ("web_events", f"{web_file}:2", "bad JSON"),
        ("web_events", f"{web_file}:3", "missing required key 'timestamp'"),
        ("web_events", f"{web_file}:4", "'timestamp' is not an ISO-8601 timestamp: 'yesterday at noon'"),
        ("web_events", f"{web_file}:5", "'properties' should be a JSON object, got str"),
        ("web_events", f"{web_file}:6", "missing required key 'messageId'"),
    ]  # fmt: skip
    web = metadata["raw/web_events"]
    assert (web["rows_received"], web["rows_loaded"], web["rows_quarantined"]) == (7, 2, 5)
    assert f"| {web_file}:6 | missing required key 'messageId' |" in web["quarantine_sample"]
    assert (
        metadata["raw/crm_contacts"]["rows_loaded"],
        metadata["raw/crm_contacts"]["rows_quarantined"],
    ) == (2, 2)
    assert metadata["raw/shop_orders"]["rows_quarantined"] == 1
    assert sorted(r[0] for r in query(warehouse_url, "select message_id from raw.web_events")) == [
        "ok-1",
        "ok-2",
    ]
    unbalanced = "select count(*) from ops.load_log where received <> loaded + quarantined"
    assert scalar(warehouse_url, unbalanced) == 0
    record = scalar(
        warehouse_url, "select record from ops.quarantine where source_location = %s", (f"{web_file}:2",)
    )
    assert record == '{"messageId": "broken", "type": "page"'

    # Reloading the day (the file changed) replaces its quarantine entries instead of adding to them.
    write_jsonl(sources / "web" / "events" / f"{day}.jsonl", [web_event("ok-3", day), "not json"])
    materialize_raw([day])
    assert scalar(warehouse_url, "select count(*) from ops.quarantine where stream = 'web_events'") == 1


def test_crash_after_copy_leaves_previous_state_and_rerun_completes(
    sources: Path, warehouse_url: str, shop_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    materialize_raw(DAYS)
    state_before = query(warehouse_url, "select * from ops.load_state order by 1, 2")
    execute(shop_url, "update shop.customers set updated_at = '2025-03-01'")
    write_events(sources, DAYS[1], web=[web_event("new", DAYS[1])], esp=[esp_event("new", DAYS[1])])
    write_crm_export(sources, "2025-01-09", [[contact(9)]])

    def crash(*args, **kwargs):
        raise RuntimeError("power cut after COPY")

    record_load = loaders.record_load
    monkeypatch.setattr(loaders, "record_load", crash)
    results = materialize_raw(DAYS, raise_on_error=False)
    assert not any(r.success for r in results)

    assert raw_counts(warehouse_url) == FIRST_LOAD
    assert query(warehouse_url, "select * from ops.load_state order by 1, 2") == state_before
    failed = query(warehouse_url, "select stream, error from ops.load_log where status = 'failed' order by 1")
    assert {stream for stream, _ in failed} >= {"shop_customers", "crm_contacts", "web_events", "esp_events"}
    assert all("power cut after COPY" in error for _, error in failed)

    monkeypatch.setattr(loaders, "record_load", record_load)
    metadata = materializations(materialize_raw(DAYS))
    assert metadata["raw/shop_customers"]["rows_received"] == 5
    assert metadata["raw/crm_contacts"]["rows_received"] == 1
    assert raw_counts(warehouse_url) == FIRST_LOAD | {"crm_contacts": 4, "web_events": 4, "esp_events": 3}


def test_generic_sqlalchemy_path_coerces_types_and_quarantines_what_it_cannot(
    warehouse_url: str, shop_url: str
) -> None:
    """A user's shop with loose types (text columns) is read through SQLAlchemy, row by row validated."""
    statements = [
        "create schema shop",
        "create table shop.customers (customer_id text, email varchar(200), first_name text, last_name text,"
        " phone text, accepts_marketing text, created_at text, updated_at timestamp)",
        "insert into shop.customers values ('1', 'a@x.org', 'A', 'B', null, null, null, '2025-01-01 10:00'),"
        " ('x2', 'b@x.org', 'C', 'D', null, null, null, '2025-01-01 11:00'),"
        " ('3', 'c@x.org', 'E', 'F', null, 'maybe', null, '2025-01-01 12:00')",
    ]
    execute(shop_url, *statements)
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        result = upserts.load_shop_table(conn, shop_url, loaders.SHOP_TABLES["customers"], fast_path=False)
    assert (result.received, result.loaded, result.quarantined) == (3, 1, 2)
    reasons = dict(query(warehouse_url, "select source_location, reason from ops.quarantine"))
    assert reasons == {
        "shop.customers:customer_id=x2": "'customer_id' should be bigint, got 'x2'",
        "shop.customers:customer_id=3": "'accepts_marketing' should be boolean, got 'maybe'",
    }
    landed = "select customer_id, updated_at = '2025-01-01 10:00+00' from raw.shop_customers"
    assert query(warehouse_url, landed) == [(1, True)]


def test_generic_path_loads_the_same_rows_as_the_fast_path(
    sources: Path, warehouse_url: str, shop_url: str, fresh_database
) -> None:
    other = fresh_database("wh")
    resources = {"warehouse": WarehouseResource(url=other), "sources": SourcesResource(shop_fast_path=False)}
    materialize_raw([], resources=resources)
    materialize_raw([])
    columns = "customer_id, email, accepts_marketing, created_at, updated_at"
    fast = query(warehouse_url, f"select {columns} from raw.shop_customers order by 1")
    generic = query(other, f"select {columns} from raw.shop_customers order by 1")
    assert fast == generic and len(fast) == 5
    prices = "select product_id, price from raw.shop_products order by 1"
    assert query(warehouse_url, prices) == query(other, prices)


def test_changed_partition_keys_lists_new_and_rewritten_days_only(sources: Path, warehouse_url: str) -> None:
    settings = get_settings()
    assert changed_partition_keys(settings) == DAYS  # nothing loaded yet
    materialize_raw(DAYS)
    assert changed_partition_keys(settings) == []
    write_events(sources, "2025-01-03", web=[web_event("n", "2025-01-03")], esp=[])
    write_jsonl(sources / "esp" / "events" / f"{DAYS[0]}.jsonl", [esp_event("rewritten", DAYS[0])])
    assert changed_partition_keys(settings) == [DAYS[0], "2025-01-03"]


def test_shop_without_primary_key_keeps_newest_version_and_quarantines_rows_without_id(
    warehouse_url: str, shop_url: str
) -> None:
    """A shop table without constraints: duplicate ids fall back to staging (newest wins), null ids go
    to quarantine, on the first load and on an incremental one."""
    execute(
        shop_url,
        "create schema shop",
        "create table shop.customers (customer_id bigint, email text, first_name text, last_name text,"
        " phone text, accepts_marketing boolean, created_at timestamptz, updated_at timestamptz)",
        "insert into shop.customers (customer_id, email, updated_at) values (1, 'old@x.org', '2025-01-01'),"
        " (1, 'new@x.org', '2025-01-02'), (2, 'b@x.org', '2025-01-01'), (null, 'who@x.org', '2025-01-01')",
    )
    table = loaders.SHOP_TABLES["customers"]
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        first = upserts.load_shop_table(conn, shop_url, table)
        execute(shop_url, "insert into shop.customers (customer_id, updated_at) values (null, '2025-02-01')")
        second = upserts.load_shop_table(conn, shop_url, table)

    assert (first.received, first.loaded, first.quarantined, first.written) == (4, 3, 1, 2)
    assert any("duplicate customer_ids" in note for note in first.notes)
    assert (second.received, second.loaded, second.quarantined) == (1, 0, 1)
    emails = dict(query(warehouse_url, "select customer_id, email from raw.shop_customers"))
    assert emails == {1: email_token(warehouse_url, "new@x.org"), 2: email_token(warehouse_url, "b@x.org")}
    reasons = query(
        warehouse_url, "select source_location, reason from ops.quarantine order by quarantined_at"
    )
    assert reasons == [("shop.customers:customer_id=null", "missing required column 'customer_id'")] * 2
