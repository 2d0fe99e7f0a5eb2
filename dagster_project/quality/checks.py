"""One Dagster multi-asset check per suite in `expectations/`, one asset check per expectation.

Severity `error` -> the check spec is `blocking=True` and a failure is reported with
AssetCheckSeverity.ERROR, so assets downstream of the guarded asset do not materialize in that run.
Severity `warn` -> non-blocking, reported with AssetCheckSeverity.WARN. GX is imported inside the
check body only (see gx_runner.py), so loading these definitions stays fast.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from dagster_project.quality.results import CheckOutcome, SuiteOutcome
from dagster_project.quality.suites import SuiteSpec, load_suites
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def check_specs(suite: SuiteSpec) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name=expectation.check,
            asset=dg.AssetKey(list(suite.asset)),
            blocking=expectation.blocking,
            description=f"[{expectation.severity}] {expectation.description or expectation.expect}",
            metadata={
                "suite": suite.name,
                "severity": expectation.severity,
                "expectation": expectation.expect,
            },
        )
        for expectation in suite.expectations
    ]


def build_suite_check(suite: SuiteSpec) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name=f"quality__{suite.name}",
        specs=check_specs(suite),
        description=f"GX suite `{suite.name}` on {suite.qualified_table}. {suite.description}",
        can_subset=True,
    )
    def _suite_check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        from dagster_project.quality import gx_runner  # GX import (seconds): at run time only

        settings = get_settings()
        # Data Docs (about 0.6 s a suite, whatever the data) only for a failure; weekly for everything
        outcome = gx_runner.run_suite(suite, warehouse.get_url(), context.run.run_id, settings, "failures")
        summary = gx_runner.QualityPaths.from_settings(settings).docs_dir / "summary.html"
        context.log.info(
            f"suite {suite.name}: {len(outcome.failed_errors)} error and {len(outcome.failed_warnings)} "
            f"warning checks failed in {outcome.duration_seconds:.2f} s"
        )
        selected = context.selected_asset_check_keys
        for result in check_results(suite, outcome, str(summary)):
            if dg.AssetCheckKey(result.asset_key, result.check_name) in selected:
                yield result

    return _suite_check


def check_results(suite: SuiteSpec, outcome: SuiteOutcome, summary_path: str) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=dg.AssetKey(list(suite.asset)),
            check_name=check.check,
            passed=check.success,
            severity=_SEVERITY[check.result_severity],
            metadata=check_metadata(check, outcome, summary_path),
        )
        for check in outcome.outcomes
    ]


def check_metadata(check: CheckOutcome, outcome: SuiteOutcome, summary_path: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "suite": outcome.suite,
        "severity": check.result_severity,
        "expectation": dg.MetadataValue.json({"type": check.expectation, "kwargs": check.kwargs}),
        "observed_value": dg.MetadataValue.text(_text(check.observed_value)),
        "offline_report": dg.MetadataValue.path(summary_path),
    }
    if check.unexpected_count is not None:
        metadata["unexpected_count"] = dg.MetadataValue.int(int(check.unexpected_count))
    if check.unexpected_percent is not None:
        metadata["unexpected_percent"] = dg.MetadataValue.float(round(float(check.unexpected_percent), 4))
    if check.sample:
        metadata["sample"] = dg.MetadataValue.md(markdown_table(check.sample))
    if check.note:
        metadata["note"] = dg.MetadataValue.text(check.note)
    if outcome.data_docs_page:  # a local page: the UI's browser will not open file:// links
        metadata["data_docs_page"] = dg.MetadataValue.path(outcome.data_docs_page.removeprefix("file://"))
    return metadata


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_text(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


SUITES = load_suites()
quality_checks = [build_suite_check(suite) for suite in SUITES]
