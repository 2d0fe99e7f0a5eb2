"""Failures that say why: the run output names each failed step's error and each failed check's evidence.

A hand-made graph: a sync step that resolves the ESP target from settings (ESP_PROVIDER=nonsense) and
an orders asset whose blocking check fails with the metadata the GX checks attach.
"""

from __future__ import annotations

import dagster as dg
import pytest

from dagster_project.automation import run_report
from dagster_project.automation.pipeline import Outcome
from dagster_project.automation.progress import progress_logger
from dagster_project.quality.checks import markdown_table
from dagster_project.settings import get_settings

ORDERS = dg.AssetKey(["raw", "shop_orders"])


@dg.asset(key=ORDERS)
def orders() -> None:
    """Stands in for the orders extract."""


@dg.asset_check(asset=ORDERS, name="order_total_not_negative", blocking=True)
def order_total_not_negative() -> dg.AssetCheckResult:
    sample = [{"order_id": 11, "order_total": -5.0}, {"order_id": 12, "order_total": -7.5}]
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "observed_value": dg.MetadataValue.text("2 of 900 rows unexpected"),
            "sample": dg.MetadataValue.md(markdown_table(sample)),
        },
    )


@dg.asset(key=["activation", "esp_profile_sync"])
def esp_profile_sync() -> None:
    """Resolves the ESP target the way the real sync does."""
    from dagster_project.activation.resources import resolve_target

    resolve_target(get_settings())


def _run(**kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [orders, order_total_not_negative, esp_profile_sync], raise_on_error=False, **kwargs
    )


def test_failure_lines_name_the_error_and_the_check_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESP_PROVIDER", "nonsense")
    result = _run()
    assert not result.success
    assert run_report.failure_lines(result) == [
        "activation__esp_profile_sync: SettingsError: ESP_PROVIDER: 'nonsense' is not one of sandbox, "
        "klaviyo, mailchimp",
        "raw/shop_orders:order_total_not_negative (ERROR): observed 2 of 900 rows unexpected; "
        "e.g. order_id=11, order_total=-5.0; order_id=12, order_total=-7.5",
    ]
    outcome = Outcome(
        False, "build failed (run x)", (result.run_id,), tuple(run_report.failure_lines(result))
    )
    assert outcome.report().splitlines()[0] == "build failed (run x)"
    assert outcome.report().splitlines()[1].startswith("  - activation__esp_profile_sync: SettingsError:")


def test_progress_lines_say_why_a_step_failed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ESP_PROVIDER", "nonsense")
    defs = dg.Definitions(
        assets=[orders, esp_profile_sync],
        asset_checks=[order_total_not_negative],
        jobs=[dg.define_asset_job("everything")],
        loggers={"progress": progress_logger},
    )
    defs.resolve_job_def("everything").execute_in_process(
        run_config={"loggers": {"progress": {}}}, raise_on_error=False
    )
    err = capsys.readouterr().err
    assert "FAILED activation__esp_profile_sync" in err
    assert "why: SettingsError: ESP_PROVIDER: 'nonsense' is not one of sandbox, klaviyo, mailchimp" in err
    assert "check FAILED raw/shop_orders:order_total_not_negative (ERROR): observed 2 of 900" in err


def test_markdown_rows_reads_the_sample_table_back() -> None:
    table = markdown_table([{"key": "a|b", "n": 1}, {"key": "c", "n": None}, {"key": "d"}, {"key": "e"}])
    assert run_report.markdown_rows(table) == [
        {"key": "a|b", "n": "1"},
        {"key": "c", "n": ""},
        {"key": "d", "n": ""},
    ]
    assert run_report.markdown_rows("no table") == []
