"""The activation assets under Dagster, the `sendwise sync` / `sendwise esp` commands, the esp resource."""

from __future__ import annotations

import socket

import dagster as dg
import pytest
from activation_world import AS_OF, world  # noqa: F401

from dagster_project.activation.assets import (
    campaign_audiences,
    esp_profile_sync,
    esp_sync_has_no_failed_records,
    masked,
)
from dagster_project.activation.client import EspError, ProfileRecord
from dagster_project.activation.resources import EspResource, build_client, sandbox_is_up, sandbox_state_dir
from dagster_project.activation.sandbox import Sandbox
from dagster_project.cli import main
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource


@pytest.fixture
def home_sandbox(world, monkeypatch):  # noqa: F811
    """A sandbox keeping its state where `sendwise esp show` looks (SENDWISE_HOME/esp_sandbox)."""
    settings = get_settings()
    with Sandbox(sandbox_state_dir(settings), settings.esp_specs_dir) as running:
        monkeypatch.setenv("ESP_PROVIDER", "sandbox")
        monkeypatch.setenv("ESP_BASE_URL", running.url)
        monkeypatch.delenv("ESP_LIST_ID", raising=False)
        yield running


def materialize(url: str, dry_run: bool) -> dg.ExecuteInProcessResult:
    config = {"config": {"dry_run": dry_run}}
    return dg.materialize(
        [esp_profile_sync, campaign_audiences, esp_sync_has_no_failed_records],
        resources={"warehouse": WarehouseResource(url=url), "esp": EspResource(upsert_batch_size=100)},
        run_config={
            "ops": {"activation__esp_profile_sync": config, "activation__campaign_audiences": config}
        },
    )


def test_assets_dry_run_then_sync(world, home_sandbox, warehouse_url):  # noqa: F811
    world.conn.execute("update marts.fct_customer_features set engagement_score = 0.9")
    world.conn.execute(
        "insert into marts.fct_orders select 1, customer_key, 'completed', 80, %s "
        "from marts.dim_customers where is_contactable order by 1 limit 1",
        (AS_OF,),
    )
    world.conn.commit()
    dry = materialize(warehouse_url, dry_run=True)
    assert dry.success and home_sandbox.store.request_count == 0
    planned = dry.asset_materializations_for_node("activation__esp_profile_sync")[0].metadata["planned"].value
    assert planned == len(world.contactable_emails())

    real = materialize(warehouse_url, dry_run=False)
    assert real.success
    metadata = real.asset_materializations_for_node("activation__esp_profile_sync")[0].metadata
    assert metadata["added"].value == planned and metadata["failed"].value == 0
    assert "| add |" in metadata["changes_preview"].value
    audiences = real.asset_materializations_for_node("activation__campaign_audiences")[0].metadata
    assert audiences["synced_customers"].value == 1
    assert len(home_sandbox.store.lists["sendwise"]) == planned
    assert len(home_sandbox.store.lists["sendwise-post-purchase-thank-you"]) == 1
    assert [c.passed for c in real.get_asset_check_evaluations()] == [True]

    email = sorted(world.contactable_emails())[5]
    home_sandbox.faults.update({"reject_emails": {email: f"{email} is a spam trap"}})
    world.conn.execute("update marts.fct_customer_features set engagement_score = 0.5")
    world.conn.commit()
    again = materialize(warehouse_url, dry_run=False)
    check = again.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["rejected"].value == 1
    assert f"{email[0]}***@example.com is a spam trap" in check.metadata["top_reasons"].value
    # the UI has no auth: no raw email in any metadata it shows
    shown = [
        str(value.value)
        for result in (dry, real, again)
        for event in result.get_asset_materialization_events()
        for value in event.materialization.metadata.values()
    ] + [str(v.value) for c in again.get_asset_check_evaluations() for v in c.metadata.values()]
    assert "***@example.com" in " ".join(shown)
    assert not [e for e in world.contactable_emails() if any(e in text for text in shown)]


def test_masked_hides_every_email_in_a_text():
    assert masked("jane.doe@example.com") == "j***@example.com"
    assert (
        masked("invalid: 'a@b.test' and <x.y@z.org>, twice")
        == "invalid: 'a***@b.test' and <x***@z.org>, twice"
    )
    assert masked(None) == "" and masked("no address here") == "no address here"


def test_sync_and_esp_show_commands(world, home_sandbox, capsys):  # noqa: F811
    assert main(["sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "would add:" in out and home_sandbox.store.request_count == 0

    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert f"added={len(world.contactable_emails())}" in out
    assert main(["sync", "--reconcile", "--profiles-only"]) == 0
    out = capsys.readouterr().out
    assert f"reconcile: {len(world.contactable_emails())} list members in the ESP, 0 removed" in out
    assert "planned=0" in out

    email = sorted(world.contactable_emails())[0]
    key = world.conn.execute(
        "select customer_key from marts.dim_customers where email = %s", (world.token(email),)
    ).fetchone()[0]
    segment = world.conn.execute(
        "select segment_name from ml.customer_segments where customer_key = %s", (key,)
    ).fetchone()[0]
    assert main(["esp", "show", email.upper()]) == 0
    out = capsys.readouterr().out
    assert (
        f"external_id: {key}" in out
        and f"sendwise_segment: {segment}" in out
        and "lists:       sendwise" in out
    )
    assert main(["esp", "show", "nobody@example.com"]) == 1
    capsys.readouterr()
    assert main(["esp", "stats"]) == 0
    out = capsys.readouterr().out
    assert (
        f"list sendwise: {len(world.contactable_emails())} members" in out and "e.g. sendwise esp show" in out
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_sandbox_provider_starts_the_server_when_it_is_not_running(monkeypatch, tmp_path):
    monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ESP_BASE_URL", url)
    assert not sandbox_is_up(url)
    client, target = build_client()
    try:
        assert sandbox_is_up(url) and target.destination == "sandbox:sendwise"
        assert [
            o.status for o in client.upsert_profiles([ProfileRecord("k", "k@example.com")], "sendwise")
        ] == ["ok"]
    finally:
        client.close()
        assert main(["esp", "stop"]) == 0
    import time

    deadline = time.monotonic() + 5
    while sandbox_is_up(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sandbox_is_up(url)
    assert main(["esp", "show", "k@example.com"]) == 0  # the state file outlives the server


def test_without_esp_base_url_each_home_gets_its_own_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    monkeypatch.delenv("ESP_BASE_URL", raising=False)
    urls = []
    for home in ("one", "two", "one"):
        monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / home))
        client, target = build_client()
        client.close()
        urls.append(target.base_url)
    try:
        assert urls[0] == urls[2] != urls[1]  # reused for the same home, never shared across homes
    finally:
        for home in ("one", "two"):
            monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / home))
            main(["esp", "stop"])


def test_real_providers_need_their_secrets(monkeypatch):
    monkeypatch.setenv("ESP_PROVIDER", "klaviyo")
    monkeypatch.delenv("ESP_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ESP_API_KEY"):
        build_client()
    monkeypatch.setenv("ESP_API_KEY", "pk_secret_value")
    monkeypatch.setenv("ESP_LIST_ID", "Xy12")
    client, target = build_client()
    assert target.base_url == "https://a.klaviyo.com" and target.destination == "klaviyo:Xy12"
    client.close()
    # errors name the request, never the key
    monkeypatch.setenv("ESP_BASE_URL", f"http://127.0.0.1:{free_port()}")
    client, _ = build_client(max_attempts=2, backoff_base=0.01, timeout=1)
    with pytest.raises(EspError) as failure:
        client.upsert_profiles([ProfileRecord("k", "k@example.com")], "Xy12")
    assert "profile-bulk-import-jobs" in str(failure.value) and "pk_secret_value" not in str(failure.value)
    client.close()
