"""The health report (`sendwise status`, `ops/health_report`) and the alert sensors, on hand-filled tables."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dagster_project.activation import sync, triggers
from dagster_project.cli import main as cli_main
from dagster_project.health import report
from dagster_project.health.cli import render
from dagster_project.health.plots import health_plots
from dagster_project.ingestion import loaders
from dagster_project.ml import io as ml_io
from dagster_project.quality import results
from dagster_project.warehouse import connection

PNG = b"\x89PNG"


def _fill(url: str) -> None:
    engine = connection.create_engine(url)
    results.ensure_tables(engine)
    engine.dispose()
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        conn.execute(loaders.OPS_DDL)
        conn.execute(sync.DDL)
        conn.execute(triggers.DDL)
        conn.execute(ml_io.CUSTOMER_SEGMENTS_DDL)
        conn.execute(
            "insert into ops.load_log (batch_id, stream, partition_key, received, loaded, quarantined, "
            "status, error, started_at, finished_at) values "
            "('w1', 'web_events', '2026-03-01', 100, 90, 10, 'success', null, now() - interval '50 hours', "
            " now() - interval '50 hours'), "
            "('w2', 'web_events', '2026-03-02', 100, 0, 0, 'failed', 'bad gzip', now() - interval '2 hours', "
            " now() - interval '2 hours'), "
            "('o1', 'shop_orders', null, 40, 40, 0, 'success', null, now() - interval '3 hours', "
            " now() - interval '3 hours')"
        )
        conn.execute(
            "insert into ops.validation_results (suite, asset, table_name, run_id, validated_at, success, "
            "evaluated, failed_errors, failed_warnings, duration_seconds, statistics, results) values "
            "('dim_customers', 'dim_customers', 'marts.dim_customers', 'r1', '2026-03-01 10:00+00', true, "
            " 5, 0, 1, 0.5, '{}', '[]'), "
            "('dim_customers', 'dim_customers', 'marts.dim_customers', 'r2', '2026-03-01 12:00+00', false, "
            " 5, 1, 0, 0.5, '{}', '[]'), "
            "('dim_customers', 'dim_customers', 'marts.dim_customers', 'r3', '2026-03-01 14:00+00', true, "
            " 5, 0, 0, 0.5, '{}', '[]')"
        )
        conn.execute(
            "insert into activation.esp_sync_log (run_id, destination, dry_run, status, started_at, planned, "
            "failed, rejected, requests) values "
            "('s1', 'sandbox', false, 'success', '2026-03-01 10:00+00', 100, 2, 3, 4), "
            "('s2', 'sandbox', false, 'failed', '2026-03-02 10:00+00', 100, 0, 0, 1), "
            "('s3', 'klaviyo', false, 'success', '2026-03-02 11:00+00', 10, 0, 0, 1)"
        )
        conn.execute(
            "insert into activation.campaign_executions (trigger_id, customer_key, event_key, "
            "campaign_template_id, list_id, status, detected_at, synced_at, last_error) values "
            "('winback', 'ck-1', 'e1', 't', 'l', 'synced', '2026-03-01 09:00+00', now(), null), "
            "('winback', 'ck-2', 'e2', 't', 'l', 'failed', '2026-03-01 09:30+00', null, 'HTTP 500'), "
            "('welcome', 'ck-3', 'e3', 't', 'l', 'pending', '2026-03-02 09:00+00', null, null)"
        )
        conn.execute(
            "create schema if not exists marts; create table marts.dim_customers as select * from (values "
            "('ck-1', true, 'HIGH'), ('ck-2', true, 'LOW'), ('ck-3', false, 'HIGH'), "
            "('ck-4', false, 'INVALID')) v(customer_key, is_contactable, data_quality_level)"
        )
        conn.execute(
            "insert into ml.customer_segments values ('ck-1', 0, 'loyal', 1, 1, 'v1', null), "
            "('ck-2', 0, 'loyal', 1, 1, 'v1', null), ('ck-3', 1, 'lapsed', 1, 1, 'v1', null)"
        )


@pytest.fixture
def filled(warehouse_url: str) -> Iterator[psycopg.Connection]:
    _fill(warehouse_url)
    with psycopg.connect(connection.libpq_url(warehouse_url)) as conn:
        yield conn


def _rows(frame, *columns) -> list[tuple]:
    return [tuple(row) for row in frame[list(columns)].itertuples(index=False)]


def test_source_freshness_and_load_rates(filled: psycopg.Connection) -> None:
    freshness = report.source_freshness(filled)
    assert _rows(freshness, "stream", "latest_status", "latest_error", "loads") == [
        ("shop_orders", "success", "", 1),
        ("web_events", "failed", "bad gzip", 2),
    ]
    hours = dict(_rows(freshness, "stream", "hours_since_success"))
    assert hours["shop_orders"] == pytest.approx(3, abs=0.2) and hours["web_events"] == pytest.approx(
        50, abs=0.2
    )
    rates = report.load_rates(filled)
    web = rates[rates["stream"] == "web_events"]
    assert sorted(_rows(web, "quarantine_rate", "failed_loads")) == [(0.0, 1), (0.1, 0)]


def test_quality_sync_triggers_and_profiles(filled: psycopg.Connection) -> None:
    quality = report.quality_pass_rate(filled)
    assert _rows(quality, "suite", "validations", "passed", "failed_warnings") == [("dim_customers", 3, 2, 1)]
    assert quality["pass_rate"].iloc[0] == pytest.approx(2 / 3)

    syncs = report.sync_status(filled)
    assert _rows(syncs, "destination", "syncs", "latest_status", "failed_syncs", "requests") == [
        ("klaviyo", 1, "success", 0, 1),
        ("sandbox", 2, "failed", 1, 5),
    ]
    sandbox = syncs[syncs["destination"] == "sandbox"].iloc[0]
    assert sandbox["sync_error_rate"] == pytest.approx(0.5)
    assert sandbox["record_error_rate"] == pytest.approx(5 / 200)

    executions = report.trigger_executions(filled)
    assert _rows(executions, "trigger_id", "executions", "synced", "with_errors") == [
        ("winback", 2, 1, 1),
        ("welcome", 1, 0, 0),
    ]

    profiles = report.profile_stats(filled)
    assert _rows(profiles, "measure", "value", "profiles") == [
        ("contactable", "yes", 2),
        ("profiles", "all", 4),
        ("quality level", "HIGH", 2),
        ("quality level", "INVALID", 1),
        ("quality level", "LOW", 1),
        ("segment", "lapsed", 1),
        ("segment", "loyal", 2),
    ]
    assert profiles.loc[profiles["measure"] == "contactable", "share"].iloc[0] == pytest.approx(0.5)

    sizes = report.warehouse_size(filled)
    assert {"ops", "activation", "marts", "ml"} <= set(sizes["schema"]) and (sizes["bytes"] > 0).all()


def test_slowest_models_come_from_dbt_run_results(tmp_path: Path) -> None:
    run = tmp_path / "sendwise_dbt-abc1234-x" / "run_results.json"
    run.parent.mkdir()
    run.write_text(json.dumps({"results": [
        {"unique_id": "model.sendwise.dim_customers", "status": "success", "execution_time": 2.5},
        {"unique_id": "test.sendwise.not_null_x", "status": "pass", "execution_time": 9.0},
        {"unique_id": "model.sendwise.stg_orders", "status": "success", "execution_time": 0.4},
        {"unique_id": "model.sendwise.int_identity", "status": "error", "execution_time": 4.0},
    ]}))  # fmt: skip
    assert report.latest_run_results(tmp_path) == run
    slowest = report.slowest_models(report.latest_run_results(tmp_path), limit=2)
    assert _rows(slowest, "model", "status", "seconds") == [
        ("sendwise.int_identity", "error", 4.0),
        ("sendwise.dim_customers", "success", 2.5),
    ]
    assert report.slowest_models(tmp_path / "missing.json").empty


def test_status_copes_with_an_empty_warehouse(warehouse_url: str, capsys) -> None:
    assert cli_main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Sources: freshness and last load\n  (no data yet)" in out
    assert "ESP sync per destination\n  (no data yet)" in out


def test_status_prints_the_report(filled: psycopg.Connection, capsys) -> None:
    assert cli_main(["status", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "web_events" in out and "bad gzip" in out and "klaviyo" in out and "lapsed" in out
    text = render(report.health_frames(filled), days=1)
    quality = text.split("Data quality: pass rate per suite and day\n", 1)[1].split("\n\n", 1)[0]
    assert "dim_customers" in quality


def test_every_health_plot_renders_on_filled_empty_and_nan_frames(filled: psycopg.Connection) -> None:
    frames = report.health_frames(filled)
    empty = {title: frame.iloc[0:0] for title, frame in frames.items()}
    nan = {title: frame.copy() for title, frame in frames.items()}
    for frame in nan.values():
        for column in frame.columns:
            if column not in ("day", "stream", "suite", "destination", "measure", "value", "trigger_id"):
                frame[column] = float("nan")
    for variant in (frames, empty, nan):
        plots = health_plots(variant)
        assert len(plots) == 6 and all(png.startswith(PNG) for png in plots.values())


def test_health_report_asset_attaches_tables_and_plots(filled: psycopg.Connection, warehouse_url) -> None:
    from dagster_project.health.assets import health_report
    from dagster_project.warehouse.resource import WarehouseResource

    result = dg.materialize([health_report], resources={"warehouse": WarehouseResource(url=warehouse_url)})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert "bad gzip" in metadata["Sources: freshness and last load"].value
    assert metadata["plot_quality_pass_rate"].value.startswith("![quality_pass_rate](data:image/png;base64,")


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A local webhook on a free port; SENDWISE_ALERT_WEBHOOK_URL points at it; yields what it got."""
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SENDWISE_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    try:
        yield _Hook.received
    finally:
        server.shutdown()
        server.server_close()


@dg.asset
def broken_extract() -> None:
    raise ConnectionError("shop database refused the connection")


def test_one_alert_for_one_failed_run(webhook: list[dict]) -> None:
    from dagster_project.health.sensors import alert_on_run_failure

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([broken_extract], instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )
    alert_on_run_failure(context)
    assert len(webhook) == 1
    alert = webhook[0]
    assert alert["kind"] == "run_failure" and alert["run_id"] == result.run_id
    assert alert["reasons"] == ["broken_extract: ConnectionError: shop database refused the connection"]
    assert "broken_extract: ConnectionError" in alert["text"]


def test_stale_sources_alert_once_per_change(filled: psycopg.Connection, webhook: list[dict]) -> None:
    from dagster_project.health.sensors import alert_on_stale_sources

    instance = dg.DagsterInstance.ephemeral()
    first = dg.build_sensor_context(instance=instance)
    alert_on_stale_sources(first)
    assert [a["streams"] for a in webhook] == [["web_events"]]  # 50 h since its last success
    again = dg.build_sensor_context(instance=instance, cursor=first.cursor)
    alert_on_stale_sources(again)
    assert len(webhook) == 1  # the same stale set is not reported every hour


def test_no_webhook_no_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.health.sensors import alert_on_stale_sources

    monkeypatch.delenv("SENDWISE_ALERT_WEBHOOK_URL", raising=False)
    skipped = alert_on_stale_sources(dg.build_sensor_context())
    assert isinstance(skipped, dg.SkipReason) and "not set" in skipped.skip_message
