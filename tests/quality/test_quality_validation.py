"""GX suites against a real warehouse: clean data passes, each corruption fails exactly its checks."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from quality_world import CORRUPTIONS, TRUNCATED_LOAD, Corruption, execute, failures

from dagster_project.quality.suites import load_suites
from dagster_project.warehouse import connection


def test_clean_world_passes_every_suite(validate_all) -> None:
    outcomes = validate_all()
    assert set(outcomes) == {
        "raw_shop_orders", "raw_shop_customers", "raw_esp_events", "raw_web_events",
        "dim_customers", "fct_customer_features", "ml_customer_segments", "ml_send_time_predictions",
        "ml_customer_value", "staging_quarantine",
    }  # fmt: skip
    assert failures(outcomes) == {}
    orders = outcomes["raw_shop_orders"]
    assert orders.row_count == 900
    assert orders.outcome("quarantine_share").observed_value == pytest.approx(0.01)


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_corruption_fails_exactly_the_intended_checks(
    world: str, validate_all, corruption: Corruption
) -> None:
    execute(world, corruption.statement)
    outcomes = validate_all()
    assert failures(outcomes) == corruption.expected_failures
    for suite, checks in corruption.expected_failures.items():
        for check in checks:
            outcome = outcomes[suite].outcome(check)
            assert outcome.observed_value is not None or outcome.unexpected_count is not None, outcome


def test_failure_metadata_names_the_offending_rows(world: str, validate_all) -> None:
    execute(world, "update raw.shop_orders set order_total = -5 where order_id % 10 = 1")  # 90 of 900
    outcome = validate_all()["raw_shop_orders"].outcome("order_total_not_negative")
    assert outcome.unexpected_count == 90
    assert outcome.sample and {row["order_id"] % 10 for row in outcome.sample} == {1}
    assert {row["order_total"] for row in outcome.sample} == {-5.0}
    assert outcome.severity == "error"


def test_truncated_load_fails_the_row_count_and_never_becomes_the_baseline(world: str, validate_all) -> None:
    assert failures(validate_all()) == {}
    execute(world, TRUNCATED_LOAD)
    first = validate_all()
    assert failures(first) == {"raw_esp_events": {"row_count_vs_previous_run"}}
    assert first["raw_esp_events"].row_count == 1500
    # The shrunken table is not accepted as the new normal: the next run still compares with 3000.
    second = validate_all()
    assert failures(second) == {"raw_esp_events": {"row_count_vs_previous_run"}}
    assert "3000" in second["raw_esp_events"].outcome("row_count_vs_previous_run").note


def test_allowed_shrink_is_configurable(world: str, validate_all, monkeypatch: pytest.MonkeyPatch) -> None:
    validate_all()
    execute(world, TRUNCATED_LOAD)
    monkeypatch.setenv("SENDWISE_QUALITY_MAX_SHRINK", "0.6")
    assert failures(validate_all()) == {}


def test_staging_quarantine_share_names_the_source_and_is_configurable(
    world: str, validate_all, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(
        world,
        "update staging.quarantine_shares set staged_rows = 1800, quarantined_rows = 200, "
        "quarantine_share = 0.1 where source_table = 'web_events'",
    )
    share = validate_all()["staging_quarantine"].outcome("quarantine_share")
    assert not share.success and share.severity == "error"
    assert [row["source_table"] for row in share.sample] == ["web_events"]
    assert share.kwargs["max_value"] == pytest.approx(0.05)
    monkeypatch.setenv("SENDWISE_QUALITY_MAX_QUARANTINE_SHARE", "0.15")
    assert failures(validate_all()) == {}


def test_missing_load_log_is_reported_but_does_not_block(world: str, validate_all) -> None:
    execute(world, "delete from ops.load_log where stream = 'shop_customers'")
    outcome = validate_all()["raw_shop_customers"]
    share = outcome.outcome("quarantine_share")
    assert not share.success and share.result_severity == "warn"
    assert "no loads recorded" in share.note
    assert outcome.success  # no failed error checks


def test_results_are_kept_in_ops(world: str, validate_all) -> None:
    execute(world, "update raw.shop_orders set order_total = -1 where order_id % 10 = 5")
    validate_all()
    validate_all()
    engine = connection.create_engine(world)
    try:
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.text(
                        "select suite, asset, run_id, success, failed_errors, statistics, results "
                        "from ops.validation_results order by validation_id"
                    )
                )
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    suites = len(load_suites())  # one row per suite and run
    assert len(rows) == 2 * suites and len({r["run_id"] for r in rows}) == 2
    orders = [r for r in rows if r["suite"] == "raw_shop_orders"]
    assert [r["success"] for r in orders] == [False, False]
    assert orders[0]["asset"] == "raw/shop_orders" and orders[0]["failed_errors"] == 1
    assert orders[0]["statistics"]["evaluated"] == len(orders[0]["results"])
    failed = [c for c in orders[0]["results"] if not c["success"]]
    assert [c["check"] for c in failed] == ["order_total_not_negative"]


def test_reports_are_written_and_readable_offline(world: str, validate_all, quality_home) -> None:
    execute(world, "update raw.shop_orders set order_total = -1 where order_id % 10 = 5")
    outcomes = validate_all(build_docs=True)
    summary = (quality_home / "data_docs" / "summary.html").read_text()
    assert "raw_shop_orders" in summary and "order_total_not_negative" in summary and "FAILED" in summary
    assert "<script" not in summary and "http://" not in summary and "https://" not in summary
    page = outcomes["raw_shop_orders"].data_docs_page
    assert page and page.startswith("file://")
    assert (quality_home / "data_docs" / "index.html").exists()
    page_file = quality_home / "data_docs" / page.removeprefix("file://").split("/data_docs/", 1)[1]
    assert page_file.exists()
    for html_file in (page_file, quality_home / "data_docs" / "index.html"):  # no CDN: readable offline
        text = html_file.read_text()
        assert re.search(r"""<(link|script|img)\b[^>]*(href|src)=["']https?://""", text) is None
        assert "url('https://" not in text and "<style>" in text
    assert "raw_shop_orders" in page_file.read_text()
