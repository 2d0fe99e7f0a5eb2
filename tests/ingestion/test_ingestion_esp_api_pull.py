"""ESP engagement pulled from the Klaviyo events API (the local sandbox) into the day files, then loaded by
the unchanged raw/esp_events asset: incremental, idempotent, every request conforming to the spec."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import orjson
import pytest
from ingestion_helpers import query, scalar

from dagster_project.activation.client import ApiSession, EspError, SentRequest
from dagster_project.activation.events_pull import OVERLAP, STREAM, pull_esp_events
from dagster_project.activation.klaviyo import KlaviyoClient, klaviyo_headers
from dagster_project.activation.sandbox import Sandbox
from dagster_project.activation.spec_validation import klaviyo_validator
from dagster_project.cli import main as cli_main
from dagster_project.ingestion.definitions import build_defs
from dagster_project.ingestion.partitions import changed_partition_keys
from dagster_project.ingestion.sources import SourcesResource
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

METRICS = {
    "sent": "Sent Email",
    "delivered": "Received Email",
    "open": "Opened Email",
    "click": "Clicked Email",
    "bounce": "Bounced Email",
}


@pytest.fixture
def source_dir(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "world"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(folder))
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2026-01-01")
    return folder


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    specs = get_settings().esp_specs_dir
    assert klaviyo_validator(specs) is not None, f"the Klaviyo spec files are missing from {specs}"
    with Sandbox(tmp_path / "esp_sandbox", specs) as running:  # validates every /api request against them
        yield running


@pytest.fixture
def sent() -> list[SentRequest]:
    return []


@pytest.fixture
def client(sandbox: Sandbox, sent: list[SentRequest]) -> Iterator[KlaviyoClient]:
    session = ApiSession(
        sandbox.url, klaviyo_headers("test-key"), rate_per_second=1000, burst=1000, max_attempts=2,
        backoff_base=0.01, timeout=5.0, on_request=sent.append,
    )  # fmt: skip
    klaviyo = KlaviyoClient(session)
    yield klaviyo
    klaviyo.close()


def seed(sandbox: Sandbox, events: list[tuple[str, str, str, dict]]) -> None:
    """(event_type, email, datetime, properties) through the sandbox's admin endpoint."""
    body = {
        "events": [
            {"metric": METRICS.get(kind, kind), "email": email, "datetime": when, "properties": props}
            for kind, email, when, props in events
        ]
    }
    httpx.post(f"{sandbox.url}/__sandbox/events", json=body, timeout=5).raise_for_status()


def a_day_of_mail(day: str, people: int = 3) -> list[tuple[str, str, str, dict]]:
    events = []
    for i in range(people):
        email, message = f"person{i}@example.com", {"$message": f"msg-{day}-{i}", "campaign_id": "cmp-1"}
        events += [
            ("sent", email, f"{day}T08:00:0{i}+00:00", message),
            ("delivered", email, f"{day}T08:00:1{i}+00:00", message),
            ("open", email, f"{day}T09:1{i}:00+00:00", {**message, "user_agent": "Mozilla/5.0"}),
        ]
    events.append(("click", "person0@example.com", f"{day}T09:30:00+00:00", {"URL": "https://shop.test/a"}))
    events.append(("bounce", "person9@example.com", f"{day}T08:00:30+00:00", {"bounce_type": "hard"}))
    events.append(("Viewed Product", "person0@example.com", f"{day}T10:00:00+00:00", {}))  # not email
    return events


def day_file(source_dir: Path, day: str) -> Path:
    return source_dir / "esp" / "events" / f"{day}.jsonl"


def event_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["event_id"] for line in path.read_bytes().splitlines()]


def file_versions(source_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (source_dir / "esp" / "events").iterdir()}


def load_esp_days(days: list[str]) -> dict:
    """Materialize raw/esp_events (the existing asset, unchanged) over the range of `days`."""
    esp_asset = next(
        a for a in build_defs(get_settings()).assets if a.key == dg.AssetKey(["raw", "esp_events"])
    )
    result = dg.materialize(
        [esp_asset],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    assert result.success
    materialization = result.get_asset_materialization_events()[0]  # one per day, same run metadata
    return {k: v.value for k, v in materialization.materialization.metadata.items()}


def assert_requests_conform(sent: list[SentRequest]) -> None:
    validator = klaviyo_validator(get_settings().esp_specs_dir)
    problems = [p for r in sent for p in validator.violations(r.method, r.url, r.headers, r.body or None)]
    assert problems == []
    paths = {(r.method, httpx.URL(r.url).path) for r in sent}
    assert paths == {("GET", "/api/metrics"), ("GET", "/api/events")}


def test_pulled_events_load_unchanged_and_a_second_pull_adds_nothing(
    warehouse_url: str, source_dir: Path, sandbox: Sandbox, client: KlaviyoClient, sent: list[SentRequest]
):
    seed(sandbox, a_day_of_mail("2026-03-01") + a_day_of_mail("2026-03-02"))

    first = pull_esp_events(warehouse_url, client, source_dir)
    assert first.since is None  # no mark yet: everything
    assert (first.pulled, first.written) == (22, 22)  # 11 email events a day; "Viewed Product" is not one
    assert first.written_per_day == {"2026-03-01": 11, "2026-03-02": 11}
    assert first.high_water_mark == "2026-03-02T09:30:00+00:00"
    for day in ("2026-03-01", "2026-03-02"):
        ids = event_ids(day_file(source_dir, day))
        assert len(ids) == len(set(ids)) == 11
    click = next(
        r for r in map(orjson.loads, day_file(source_dir, "2026-03-01").read_bytes().splitlines())
        if r["event_type"] == "click"
    )  # fmt: skip
    assert (click["email"], click["url"], click["timestamp"]) == (
        "person0@example.com", "https://shop.test/a", "2026-03-01T09:30:00+00:00",
    )  # fmt: skip

    metadata = load_esp_days(["2026-03-01", "2026-03-02"])
    assert (metadata["rows_loaded"], metadata["rows_quarantined"]) == (22, 0)
    rows = query(
        warehouse_url,
        "select event_type, count(*), count(distinct event_id) from raw.esp_events group by 1 order by 1",
    )
    assert rows == [("bounce", 2, 2), ("click", 2, 2), ("delivered", 6, 6), ("open", 6, 6), ("sent", 6, 6)]
    assert scalar(warehouse_url, "select count(*) from raw.esp_events where bounce_type = 'hard'") == 2

    before = file_versions(source_dir)
    second = pull_esp_events(warehouse_url, client, source_dir)
    assert second.since == datetime(2026, 3, 2, 9, 30, tzinfo=UTC) - OVERLAP
    assert second.pulled == 4  # re-read within the overlap (opens at 09:1x, the click at 09:30)...
    assert (second.written, second.written_per_day) == (0, {})  # ...and none written again
    assert second.high_water_mark == first.high_water_mark
    assert file_versions(source_dir) == before  # not even rewritten
    assert changed_partition_keys(get_settings()) == []  # so nothing asks for a reload
    log = query(
        warehouse_url,
        "select received, written, status from ops.load_log where stream = %s order by started_at",
        (STREAM,),
    )
    assert log == [(22, 22, "success"), (4, 0, "success")]
    assert_requests_conform(sent)


def test_only_events_after_the_mark_are_pulled_through_the_cli(
    warehouse_url: str,
    source_dir: Path,
    sandbox: Sandbox,
    client: KlaviyoClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    seed(sandbox, a_day_of_mail("2026-03-01"))
    assert pull_esp_events(warehouse_url, client, source_dir).written == 11
    first_day = day_file(source_dir, "2026-03-01").read_bytes()

    seed(sandbox, a_day_of_mail("2026-03-04", people=2))
    seed(sandbox, [("open", "person7@example.com", "2026-03-01T09:00:00+00:00", {})])  # late, within overlap
    seed(sandbox, [("open", "person8@example.com", "2026-02-27T09:00:00+00:00", {})])  # older than overlap
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    monkeypatch.setenv("ESP_BASE_URL", sandbox.url)
    assert cli_main(["esp", "pull"]) == 0
    out = capsys.readouterr().out
    assert "wrote 9 new" in out and "2026-03-04.jsonl: +8" in out and "2026-03-01.jsonl: +1" in out
    assert len(event_ids(day_file(source_dir, "2026-03-04"))) == 8
    grown = day_file(source_dir, "2026-03-01").read_bytes()
    assert grown.startswith(first_day) and len(grown.splitlines()) == 12  # appended, old lines untouched
    assert not day_file(source_dir, "2026-02-27").exists()  # before the mark's overlap: not pulled

    assert cli_main(["esp", "pull", "--since", "2026-02-01T00:00:00"]) == 0  # an explicit re-read
    assert "wrote 1 new" in capsys.readouterr().out  # only the one the mark had skipped
    assert event_ids(day_file(source_dir, "2026-02-27")) != []

    metadata = load_esp_days(["2026-02-27", "2026-03-04"])
    assert (metadata["rows_loaded"], metadata["rows_quarantined"]) == (21, 0)
    assert scalar(warehouse_url, "select count(distinct event_id) from raw.esp_events") == 21


def test_a_failed_pull_writes_nothing_keeps_the_mark_and_is_logged(
    warehouse_url: str, source_dir: Path, sandbox: Sandbox, client: KlaviyoClient
):
    seed(sandbox, a_day_of_mail("2026-03-01"))
    sandbox.faults.update({"server_error_requests": 100})
    with pytest.raises(EspError):
        pull_esp_events(warehouse_url, client, source_dir)
    assert not (source_dir / "esp" / "events").exists()
    assert query(warehouse_url, "select status from ops.load_log where stream = %s", (STREAM,)) == [
        ("failed",)
    ]
    assert scalar(warehouse_url, "select count(*) from ops.load_state where stream = %s", (STREAM,)) == 0

    sandbox.faults.update({"server_error_requests": 0})
    assert pull_esp_events(warehouse_url, client, source_dir).written == 11  # the next run resumes


def test_the_event_file_sensor_pulls_first_in_api_mode(
    warehouse_url: str, source_dir: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
):
    from dagster_project.automation.sensors import unloaded_event_files
    from dagster_project.definitions import defs

    seed(sandbox, a_day_of_mail("2026-03-01") + a_day_of_mail("2026-03-02"))
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    monkeypatch.setenv("ESP_BASE_URL", sandbox.url)

    def evaluate():
        return unloaded_event_files(
            dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), definitions=defs)
        )

    assert isinstance(evaluate(), dg.SkipReason)  # files mode (the default): the ESP is not asked
    monkeypatch.setenv("SENDWISE_ESP_EVENTS_SOURCE", "api")
    request = evaluate()  # one run over the range of the pulled days
    assert request.tags["dagster/asset_partition_range_start"] == "2026-03-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-03-02"
    assert len(event_ids(day_file(source_dir, "2026-03-02"))) == 11
