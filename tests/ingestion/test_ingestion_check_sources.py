"""`sendwise check-sources` on a broken source folder and shop: each problem listed, nothing loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ingestion_helpers import contact, create_shop, execute, web_event, write_crm_export, write_jsonl

from dagster_project.cli import main as cli_main
from dagster_project.ingestion.check_sources import check_all
from dagster_project.settings import get_settings


@pytest.fixture
def broken(shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SENDWISE_ABSENT_SOURCES", raising=False)
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / "home"))
    create_shop(shop_url, customers=3)
    execute(shop_url, "update shop.customers set updated_at = null where customer_id = 2")
    source = tmp_path / "exports"
    write_crm_export(source, "2025-01-05", [[contact(1), {**contact(2), "id": None}], [contact(3)]])
    (source / "crm" / "contacts" / "2025-01-05" / "page-00002.json").unlink()  # 1 of 2 pages
    (source / "crm" / "contacts" / "old-export").mkdir()
    write_jsonl(
        source / "web" / "events" / "2025-01-02.jsonl",
        [web_event("m1", "2025-01-02"), "{not json", {**web_event("m3", "2025-01-02"), "messageId": None}],
    )
    write_jsonl(source / "web" / "events" / "latest.jsonl", [web_event("m4", "2025-01-03")])
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source))
    return source


def test_check_sources_lists_each_problem_and_absent_sources(broken: Path, capsys):
    assert cli_main(["check-sources"]) == 0  # every source can load something
    out = capsys.readouterr().out
    assert "shop  problems" in out and "found: shop.customers: 3 rows" in out
    assert "shop.customers:customer_id=2: missing required column 'updated_at'" in out
    assert "crm   problems" in out and "found: 1 exports 2025-01-05..2025-01-05, 1 pages" in out
    assert "crm/contacts/2025-01-05/page-00001.json#results[1]: missing required key 'id'" in out
    assert "1 pages of total_pages 2: incomplete" in out
    assert "ignored (not named YYYY-MM-DD): old-export" in out
    assert "web/events/2025-01-02.jsonl:2: bad JSON" in out
    assert "web/events/2025-01-02.jsonl:3: missing required key 'messageId'" in out
    assert "ignored (not named YYYY-MM-DD): latest.jsonl" in out
    assert f"esp   absent\n      missing: no esp/ folder in {broken}" in out


def test_an_unusable_source_exits_non_zero(broken: Path, shop_url: str, capsys):
    (broken / "esp" / "events").mkdir(parents=True)
    (broken / "esp" / "events" / "2025-01-02.jsonl").write_text(
        "garbage\n" + json.dumps({"event_id": "e1"}) + "\n"
    )
    execute(shop_url, "drop table shop.order_items")
    assert cli_main(["check-sources"]) == 1
    out = capsys.readouterr().out
    assert "shop  unusable" in out and "missing: table shop.order_items" in out
    assert "esp   unusable" in out and "esp/events/2025-01-02.jsonl:2: " in out


def test_declared_absent_sources_are_not_read(broken: Path, monkeypatch):
    monkeypatch.setenv("SENDWISE_ABSENT_SOURCES", "shop,web")
    reports = {r.source: r for r in check_all(get_settings())}
    assert reports["shop"].status == reports["web"].status == "absent"
    assert reports["crm"].status == "problems"


def test_thresholds_are_listed_with_their_defaults_and_overrides(broken: Path, monkeypatch, capsys):
    monkeypatch.setenv("SENDWISE_QUALITY_THRESHOLDS", "raw_shop_customers.email_null_share=0.5")
    cli_main(["check-sources", "--thresholds"])
    out = capsys.readouterr().out
    assert "raw_shop_customers.email_null_share [warn]: mostly=0.95 -> mostly=0.5" in out
    assert "raw_shop_orders.row_count_vs_previous_run [error]: max_shrink=0.2\n" in out
