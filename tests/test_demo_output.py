"""The demo's output: short progress lines, dbt's chatter in a log file, a summary worth reading."""

from __future__ import annotations

import re
import sys
import warnings

import dagster as dg
import psycopg

from dagster_project.activation import sync
from dagster_project.automation.progress import materialization_line, quiet, warning_line
from dagster_project.automation.summary import run_summary
from dagster_project.ml import io as ml_io
from dagster_project.privacy.field_crypto import load_cipher
from dagster_project.warehouse import connection


def _partitions(statuses: list[str]) -> dg.MetadataValue:
    rows = "\n".join(f"| 2026-01-{i + 1:02d} | {s} | 10 | 10 | 0 |" for i, s in enumerate(statuses))
    return dg.MetadataValue.md(
        "| partition | status | received | loaded | quarantined |\n|---|---|---|---|---|\n" + rows
    )


def test_a_rerun_of_unchanged_days_says_so() -> None:
    assert (
        materialization_line("raw/web_events", {"partitions": _partitions(["unchanged"] * 120)})
        == "raw/web_events: 120 days unchanged"
    )
    mixed = _partitions(["unchanged", "success", "unchanged", "missing"])
    assert materialization_line("raw/esp_events", {"partitions": mixed}) == (
        "raw/esp_events: 4 days: 2 unchanged, 1 loaded, 1 without a file"
    )
    rows = {"rows_loaded": dg.MetadataValue.int(1200)}
    assert materialization_line("raw/shop_orders", rows) == "materialized raw/shop_orders (1,200 rows loaded)"
    assert materialization_line("dim_customers", {}) == "materialized dim_customers"


def test_warnings_are_cut_at_a_word_and_keep_their_first_line_only() -> None:
    message = "Parameter `backfill_policy` of asset is currently in beta " * 5 + "\nsecond line"
    line = warning_line(message, width=60)
    assert line == "Parameter `backfill_policy` of asset is currently in beta ..."
    assert warning_line("short\nmore") == "short"


def test_quiet_sends_stdout_and_warnings_to_a_log_without_colour_codes(tmp_path, capsys) -> None:
    with quiet(tmp_path / "logs" / "demo.log") as log_path:
        sys.stdout.write("\x1b[32mPASS\x1b[0m not_null_dim_customers_customer_key\n")
        warnings.warn("a beta API", UserWarning, stacklevel=1)
    captured = capsys.readouterr()
    assert captured.out == "" and "beta" not in captured.err
    text = log_path.read_text()
    assert "PASS not_null_dim_customers_customer_key" in text
    assert "\x1b" not in text and "UserWarning: a beta API" in text


def test_summary_shows_the_esp_result_model_figures_and_a_profile(warehouse_url: str) -> None:
    assert run_summary(warehouse_url) == ""  # nothing built yet: nothing to say, no error
    with psycopg.connect(connection.libpq_url(warehouse_url), autocommit=True) as conn:
        conn.execute(sync.DDL)
        conn.execute(ml_io.MODEL_RUNS_DDL)
        conn.execute(
            "insert into activation.esp_sync_log (run_id, destination, dry_run, status, started_at, "
            "added, updated, unchanged, removed, failed, requests) values "
            "('r1', 'sandbox', false, 'success', '2026-03-01 10:00+00', 400, 0, 0, 0, 0, 5), "
            "('r2', 'sandbox', false, 'success', '2026-03-02 10:00+00', 3, 2, 395, 1, 0, 2)"
        )
        conn.execute(
            "insert into ml.model_runs (model, version, parameters, data_snapshot, metrics, created_at) "
            "values "
            """('segmentation', 'v1', '{}', '{}', '{"k": 7, "silhouette": 0.25}', '2026-03-01'), """
            """('segmentation', 'v2', '{}', '{}', '{"k": 8, "silhouette": 0.31234, "sizes": {"0": 5},
                "ari_kmeans": 0.668, "customers": 400}', '2026-03-02')"""
        )
        cipher = load_cipher()  # the state keeps each email's token and ciphertext
        conn.execute(
            "insert into activation.esp_sync_state (destination, customer_key, email, email_encrypted, "
            "fields_hash, fields, run_id, synced_at) values "
            """('sandbox', 'ck-2', 'token-b', %s, 'h', '{"segment": "loyal", "best_send_hour": 105}', """
            """'r2', now()), """
            """('sandbox', 'ck-1', 'token-a', %s, 'h', '{"segment": "new"}', 'r2', now())""",
            (cipher.encrypt("b@example.com"), cipher.encrypt("a@example.com")),
        )
    assert run_summary(warehouse_url).splitlines() == [
        "ESP sync:    sandbox success: 3 added, 2 updated, 395 unchanged, 1 removed, 0 failed; 2 requests",
        "Models:      segmentation v2: customers=400, k=8, silhouette=0.312, ari_kmeans=0.668",
        "A profile:   sendwise esp show a@example.com   (segment=new)",
    ]


@dg.multi_asset(specs=[dg.AssetSpec(f"model_{i}") for i in range(5)])
def many_models(context):
    for i in range(5):
        context.log.warning(f"Logging an `AssetObservation` instead of an `AssetCheckResult` for test_{i}")
        yield dg.MaterializeResult(asset_key=f"model_{i}")


def test_a_step_of_many_assets_prints_a_count_and_each_warning_once(capsys) -> None:
    from dagster_project.automation.progress import progress_logger

    defs = dg.Definitions(
        assets=[many_models], jobs=[dg.define_asset_job("build")], loggers={"progress": progress_logger}
    )
    result = defs.resolve_job_def("build").execute_in_process(run_config={"loggers": {"progress": {}}})
    assert result.success
    lines = capsys.readouterr().err.splitlines()
    assert [line.strip() for line in lines if "materialized model_" in line] == [
        "materialized model_0", "materialized model_1", "materialized model_2",
    ]  # fmt: skip
    assert any(
        line.strip().startswith("ok many_models") and "5 assets materialized" in line for line in lines
    )
    warnings_shown = [line for line in lines if line.startswith("  ! ")]
    assert warnings_shown == [
        "  ! Logging an `AssetObservation` instead of an `AssetCheckResult` for test_0"
    ]  # once, without Dagster's "job - run id - step - " prefix


def test_a_warehouse_gone_mid_run_gives_a_summary_line_not_a_traceback(tmp_path) -> None:
    from dagster_project.automation.pipeline import summary_table, warehouse_summary

    gone = f"postgresql://postgres@/sendwise?host={tmp_path / 'no-server'}"
    line = warehouse_summary(gone, lambda: summary_table(gone))
    assert line.startswith("(no summary: the warehouse did not answer: ")
    assert "\n" not in line
    assert warehouse_summary(gone, lambda: "rows") == "rows"


@dg.asset
def breaks() -> None:
    raise ValueError("source file unreadable")


@dg.asset(deps=[breaks])
def after_breaks() -> None:
    return None


@dg.multi_asset(outs={"emitted": dg.AssetOut(is_required=False), "held": dg.AssetOut(is_required=False)})
def emits_one():
    yield dg.Output(1, output_name="emitted")


@dg.asset(deps=["held"])
def after_held() -> None:
    return None


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
def second_try(context) -> None:
    if context.retry_number == 0:
        raise RuntimeError("warehouse busy")


@dg.asset(check_specs=[dg.AssetCheckSpec("rows", asset="checked")])
def checked():
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


def _progress_lines(assets: list, capsys) -> tuple[bool, list[str]]:
    from dagster_project.automation.progress import progress_logger

    jobs = [dg.define_asset_job("all")]
    defs = dg.Definitions(assets=assets, jobs=jobs, loggers={"progress": progress_logger})
    result = defs.resolve_job_def("all").execute_in_process(
        run_config={"loggers": {"progress": {}}}, raise_on_error=False
    )
    return result.success, [line.strip() for line in capsys.readouterr().err.splitlines()]


def test_every_step_gets_one_closing_line(capsys) -> None:
    assets = [breaks, after_breaks, emits_one, after_held, second_try, checked]
    success, lines = _progress_lines(assets, capsys)
    assert not success
    closing = [re.match(r"(ok|FAILED|skipped|not run) (\w+)", line) for line in lines]
    assert sorted((m[2], m[1]) for m in closing if m) == [
        ("after_breaks", "not run"), ("after_held", "skipped"), ("breaks", "FAILED"), ("checked", "ok"),
        ("emits_one", "ok"), ("second_try", "ok"),
    ]  # fmt: skip
    assert "not run after_breaks: dependencies failed: ['breaks']" in lines
    retries = [line for line in lines if line.startswith("retry ")]
    assert len(retries) == 1
    assert retries[0].startswith("retry second_try (")
    assert retries[0].endswith(": RuntimeError: warehouse busy")
    assert any(line.startswith("ok checked (") and line.endswith("1 checks passed") for line in lines)


def test_a_display_problem_does_not_fail_the_step(capsys, monkeypatch) -> None:
    from dagster_project.automation import progress

    def broken(*_args, **_kwargs):
        raise KeyError("rows_loaded")

    monkeypatch.setattr(progress, "materialization_line", broken)
    success, lines = _progress_lines([checked], capsys)
    assert success
    assert "! progress display: KeyError: 'rows_loaded'" in lines
    assert any(line.startswith("ok checked (") for line in lines)
