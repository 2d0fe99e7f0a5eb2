"""Contract tests: every request the Klaviyo and Mailchimp adapters send conforms to the vendors' specs."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest
from activation_world import make_client, sandbox, world  # noqa: F401

from dagster_project.activation.client import ProfileRecord, SentRequest
from dagster_project.activation.klaviyo import KlaviyoClient, extract_klaviyo_events, klaviyo_headers
from dagster_project.activation.sandbox import Sandbox
from dagster_project.activation.spec_validation import SpecViolation, klaviyo_validator
from dagster_project.activation.sync import run_sync
from dagster_project.activation.triggers import load_triggers, sync_all_audiences
from dagster_project.settings import get_settings

SPECS = get_settings().esp_specs_dir


def operation_of(validator, request: SentRequest) -> str:
    path = httpx.URL(request.url).path
    operation = validator.find_operation(request.method, path)
    return f"{request.method} {operation.template}" if operation else f"{request.method} {path} (unknown)"


def test_every_klaviyo_request_conforms_to_the_spec(world, sandbox):  # noqa: F811
    sent: list[SentRequest] = []
    client = make_client(sandbox, on_request=sent.append)
    rejected = sorted(world.contactable_emails())[0]
    sandbox.faults.update({"reject_emails": {rejected: "invalid"}})
    run_sync(world.conn, client, "sandbox:sendwise", "sendwise")
    world.set_status(
        [
            world.conn.execute(
                "select customer_key from marts.dim_customers where is_contactable order by 1 desc limit 1"
            ).fetchone()[0]
        ],
        "bounced",
    )
    run_sync(world.conn, client, "sandbox:sendwise", "sendwise")  # a removal
    world.conn.execute(
        "insert into marts.fct_orders values (1, 'cust-000001', 'completed', 80, now()), "
        "(2, 'cust-000002', 'completed', 300, now())"
    )
    world.conn.execute("update marts.fct_customer_features set engagement_score = 0.9, lifetime_value = 900")
    world.conn.commit()
    sync_all_audiences(world.conn, client, load_triggers())
    for metric, props in (("Opened Email", {"$message": "m1"}), ("Clicked Email", {"URL": "https://x.test"})):
        sandbox.store.add_event(metric, "person1@example.com", "2026-06-01T10:00:00+00:00", props)
    sandbox.store.add_event("Opened Email", "person1@example.com", "2025-12-31T23:00:00+00:00", {})
    sandbox.store.add_event("Opened Email", "person2@example.com", "2026-06-02T10:00:00+00:00", {})
    events = extract_klaviyo_events(client, since=datetime(2026, 1, 1, tzinfo=UTC))
    members = client.list_member_emails("sendwise")
    assert members == world.contactable_emails() - {rejected}  # the ESP still refuses that one
    paged = list(client.iter_events(since=datetime(2026, 1, 1, tzinfo=UTC), page_size=1))  # cursor pages
    assert [e["event_id"] for e in paged] == [e["event_id"] for e in events]
    erased = client.delete_profiles(["person1@example.com", rejected, "never-seen@example.com"])
    assert [o.status for o in erased] == ["ok", "ok", "ok"]
    held = orjson.dumps([sandbox.store.profiles, sandbox.store.events, list(sandbox.store.jobs.values())])
    held += sandbox.store.state_file.read_bytes()
    assert b"person1@example.com" not in held and rejected.encode() not in held
    assert client.profile_ids(["person1@example.com"]) == {}

    validator = klaviyo_validator(SPECS)
    assert validator is not None, f"the Klaviyo spec files are missing from {SPECS}"
    problems = [
        p
        for request in sent
        for p in validator.violations(request.method, request.url, request.headers, request.body or None)
    ]
    assert problems == []
    operations = {operation_of(validator, r) for r in sent}
    assert operations >= {
        "POST /api/profile-bulk-import-jobs",
        "GET /api/profile-bulk-import-jobs/{job_id}",
        "GET /api/profile-bulk-import-jobs/{id}/import-errors",
        "GET /api/profiles",
        "DELETE /api/lists/{id}/relationships/profiles",
        "GET /api/metrics",
        "GET /api/events",
        "GET /api/lists/{id}/profiles",
        "POST /api/data-privacy-deletion-jobs",
    }
    assert sorted(e["event_type"] for e in events) == ["click", "open", "open"]  # not the 2025 one
    click = next(e for e in events if e["event_type"] == "click")
    assert click["email"] == "person1@example.com" and click["url"] == "https://x.test"
    assert set(click) >= {
        "event_id",
        "event_type",
        "profile_id",
        "email",
        "campaign_id",
        "message_id",
        "timestamp",
    }


def test_a_non_conforming_request_fails_validation_and_the_sandbox_answers_400(sandbox):  # noqa: F811
    validator = klaviyo_validator(SPECS)
    headers = {**klaviyo_headers("k"), "Content-Type": "application/vnd.api+json"}
    bad_body = orjson.dumps(
        {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {"data": [{"type": "person", "attributes": {"email": "a@b.test"}}]}
                },
            }
        }
    )
    with pytest.raises(SpecViolation, match="'person' is not one of"):
        validator.check("POST", "https://a.klaviyo.com/api/profile-bulk-import-jobs", headers, bad_body)
    assert validator.violations("GET", "https://a.klaviyo.com/api/profiles?page%5Bsize%5D=500", headers)
    # the endpoints the adapters read and erase with are validated too
    base = "https://a.klaviyo.com/api"
    assert validator.violations("GET", f"{base}/lists/L/profiles?page%5Bsize%5D=1000", headers)
    assert validator.violations(
        "GET", f"{base}/profile-bulk-import-jobs/J/import-errors?page%5Bsize%5D=101", headers
    )
    assert validator.violations("GET", f"{base}/profiles?bogus=1", headers)
    deletion = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {}}}}}
    assert validator.violations("POST", f"{base}/data-privacy-deletion-jobs", headers, orjson.dumps(deletion))
    missing_revision = {k: v for k, v in headers.items() if k != "revision"}
    assert any(
        "revision" in p
        for p in validator.violations("GET", "https://a.klaviyo.com/api/metrics", missing_revision)
    )

    response = httpx.post(f"{sandbox.url}/api/profile-bulk-import-jobs", content=bad_body, headers=headers)
    assert response.status_code == 400
    assert "'person' is not one of" in response.json()["errors"][0]["detail"]
    assert sandbox.store.profiles == {}


class BrokenKlaviyoClient(KlaviyoClient):
    """Sends list relationships without the JSON:API type: the sandbox must refuse it."""

    def remove_from_list(self, records, list_id):
        ids = self.profile_ids([r.email for r in records])
        self._call(
            "DELETE",
            f"/api/lists/{list_id}/relationships/profiles",
            json={"data": [{"id": i} for i in ids.values()]},
        )
        return []


def test_sandbox_without_specs_still_checks_the_fields_it_uses(tmp_path):
    with Sandbox(tmp_path / "esp", specs_dir=None) as bare:
        client = make_client(bare, client_class=BrokenKlaviyoClient)
        outcomes = client.upsert_profiles([ProfileRecord("k1", "one@example.com")], "L")
        assert [o.status for o in outcomes] == ["ok"]
        with pytest.raises(Exception, match="400.*type: profile"):
            client.remove_from_list([ProfileRecord("k1", "one@example.com")], "L")
        response = httpx.get(f"{bare.url}/api/metrics")
        assert response.status_code == 400 and "authorization" in response.text
