"""Contract tests: every request the Klaviyo and Mailchimp adapters send conforms to the vendors' specs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from activation_world import make_client, sandbox, world  # noqa: F401

from dagster_project.activation.client import ApiSession, ProfileRecord, SentRequest
from dagster_project.activation.klaviyo import KlaviyoClient, extract_klaviyo_events, klaviyo_headers
from dagster_project.activation.mailchimp import MailchimpClient, mailchimp_headers, subscriber_hash
from dagster_project.activation.sandbox import Sandbox
from dagster_project.activation.spec_validation import (
    SpecViolation,
    klaviyo_validator,
    mailchimp_validator,
)
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


class FakeMailchimp:
    """The network edge of Mailchimp: checks each request against the spec, answers like Mailchimp."""

    def __init__(self, rejected: set[str]):
        self.validator = mailchimp_validator(SPECS)
        self.rejected = rejected
        self.requests: list[httpx.Request] = []
        self.violations: list[str] = []
        self.created_merge_fields: list[str] = []
        self.batch_sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = request.content or None
        problems = self.validator.violations(request.method, str(request.url), request.headers, body)
        if problems:
            self.violations += problems
            return httpx.Response(400, json={"title": "Invalid Resource", "detail": "; ".join(problems)})
        path = request.url.path
        if path.endswith("/merge-fields") and request.method == "GET":
            return httpx.Response(
                200, json={"merge_fields": [{"tag": t} for t in ("FNAME", "LNAME", "SW_SEGMENT")]}
            )
        if path.endswith("/merge-fields"):
            self.created_merge_fields.append(orjson.loads(body)["tag"])
            return httpx.Response(200, json={"tag": orjson.loads(body)["tag"]})
        if re.fullmatch(r"/3.0/lists/[^/]+", path):
            members = orjson.loads(body)["members"]
            self.batch_sizes.append(len(members))
            errors = [
                {"email_address": m["email_address"], "error": "looks fake", "error_code": "ERROR_GENERIC"}
                for m in members
                if m["email_address"] in self.rejected
            ]
            return httpx.Response(
                200,
                json={
                    "new_members": [],
                    "updated_members": [],
                    "errors": errors,
                    "total_created": len(members) - len(errors),
                    "error_count": len(errors),
                },
            )
        if path.endswith("/members") and request.method == "GET":
            offset = int(request.url.params["offset"])
            members = [
                {"email_address": f"member{i}@example.com"} for i in range(offset, min(offset + 1000, 1500))
            ]
            return httpx.Response(200, json={"members": members, "total_items": 1500})
        if path.endswith("/tags") or request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": f"not faked: {request.method} {path}"})


def test_every_mailchimp_request_conforms_to_the_spec():
    fake = FakeMailchimp(rejected={"person7@example.com"})
    session = ApiSession(
        "https://us21.api.mailchimp.com/3.0",
        mailchimp_headers("key-us21"),
        rate_per_second=1000,
        burst=1000,
        transport=httpx.MockTransport(fake),
    )
    client = MailchimpClient(session, "aud123")
    records = [
        ProfileRecord(
            f"k{i}",
            f"person{i}@example.com",
            "F",
            "L",
            {
                "sendwise_segment": "vip",
                "sendwise_best_send_hour": 30,
                "sendwise_next_send_at": "2026-07-01T08:00:00+00:00",
                "sendwise_engagement_score": 0.5,
                "sendwise_lifetime_value": None,
            },
        )
        for i in range(1_100)
    ]
    outcomes = client.upsert_profiles(records, "aud123")
    client.add_to_audience(records[:3], "sendwise-vip-welcome")
    client.remove_from_list(records[:2], "aud123")
    assert len(client.list_member_emails("aud123")) == 1500
    assert fake.violations == []
    assert fake.batch_sizes == [500, 500, 100]
    assert sorted(fake.created_merge_fields) == ["SW_ENGAGE", "SW_HOUR", "SW_LTV", "SW_NEXT"]
    rejected = [o for o in outcomes if o.status == "rejected"]
    assert [(o.email, o.reason) for o in rejected] == [("person7@example.com", "looks fake")]
    assert sum(o.status == "ok" for o in outcomes) == 1_099
    tag_paths = {r.url.path for r in fake.requests if r.url.path.endswith("/tags")}
    assert f"/3.0/lists/aud123/members/{subscriber_hash('Person1@example.com')}/tags" in tag_paths
    # and a non-conforming Mailchimp request is caught by the same check
    bad = mailchimp_validator(SPECS).violations(
        "POST",
        "https://us21.api.mailchimp.com/3.0/lists/aud123",
        {"Authorization": "Basic eDp5", "Content-Type": "application/json"},
        orjson.dumps({"members": [{"email_address": "a@b.test", "status": "maybe"}]}),
    )
    assert bad and "'maybe' is not one of" in bad[0]
