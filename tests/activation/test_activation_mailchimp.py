"""The Mailchimp adapter against the sandbox's Mailchimp subset: every request conforms to the spec
(the sandbox checks it too), tags and archiving go through batch operations, request counts are bounded."""

from __future__ import annotations

import io
import tarfile
from collections import Counter

import httpx
import orjson
from activation_world import build_world, sandbox, write_two_customer_values  # noqa: F401
from field_tokens import decrypt

from dagster_project.activation.client import ApiSession, ProfileRecord, SentRequest
from dagster_project.activation.mailchimp import MailchimpClient, mailchimp_headers, subscriber_hash
from dagster_project.activation.sandbox import Sandbox
from dagster_project.activation.spec_validation import mailchimp_validator
from dagster_project.activation.sync import run_sync
from dagster_project.settings import get_settings

SPECS = get_settings().esp_specs_dir
AUDIENCE = "aud123"


def mailchimp(sandbox: Sandbox, sent: list[SentRequest] | None = None) -> MailchimpClient:  # noqa: F811
    session = ApiSession(
        f"{sandbox.url}/3.0",
        mailchimp_headers("key-us21"),
        rate_per_second=1000,
        burst=1000,
        max_attempts=2,
        backoff_base=0.01,
        on_request=sent.append if sent is not None else None,
    )
    return MailchimpClient(session, AUDIENCE, poll_interval=0.001)


def operations(sent: list[SentRequest]) -> Counter:
    validator = mailchimp_validator(SPECS)
    counted = Counter()
    for request in sent:
        operation = validator.find_operation(request.method, httpx.URL(request.url).path)
        counted[f"{request.method} {operation.template if operation else request.url}"] += 1
    return counted


def people(count: int) -> list[ProfileRecord]:
    properties = {
        "sendwise_segment": "vip",
        "sendwise_best_send_hour": 30,
        "sendwise_next_send_at": "2026-07-01T08:00:00+00:00",
        "sendwise_engagement_score": 0.5,
        "sendwise_lifetime_value": None,
    }
    return [ProfileRecord(f"k{i}", f"person{i}@example.com", "F", "L", properties) for i in range(count)]


def test_every_mailchimp_request_conforms_and_members_tags_and_archiving_land(sandbox):  # noqa: F811
    sandbox.faults.update({"reject_emails": {"person7@example.com": "looks fake"}})
    sent: list[SentRequest] = []
    client = mailchimp(sandbox, sent)
    records = people(1_100)
    outcomes = client.upsert_profiles(records, AUDIENCE)
    assert [(o.email, o.reason) for o in outcomes if o.status == "rejected"] == [
        ("person7@example.com", "looks fake")
    ]
    assert sum(o.status == "ok" for o in outcomes) == 1_099
    audience = sandbox.store.mailchimp.audiences[AUDIENCE]
    member = audience[subscriber_hash("Person1@example.com")]
    assert member["tags"] == ["sendwise", "sendwise: vip"] and member["merge_fields"]["SW_HOUR"] == 30

    assert [o.status for o in client.add_to_audience(records[:3], "sendwise-vip-welcome")] == ["ok"] * 3
    assert "sendwise-audience: sendwise-vip-welcome" in member["tags"]
    stranger = ProfileRecord("(not in Sendwise)", "stranger@example.com")
    removed = client.remove_from_list([*records[:2], stranger], AUDIENCE)  # 404 for the stranger: fine
    assert [o.status for o in removed] == ["ok"] * 3
    assert audience[subscriber_hash("person0@example.com")]["status"] == "archived"
    assert len(client.list_member_emails(AUDIENCE)) == 1_097
    # a tag for someone not in the audience errors in the batch: read from the results archive
    [refused] = client.add_to_audience([stranger], "x")
    assert refused.status == "rejected" and refused.reason.startswith("404 ")

    erased = client.delete_profiles(["person1@example.com", "stranger@example.com"])
    assert [o.status for o in erased] == ["ok", "ok"]  # the stranger was never there: nothing to do
    assert subscriber_hash("person1@example.com") not in audience
    held = orjson.dumps(sandbox.store.mailchimp.batches) + sandbox.store.state_file.read_bytes()
    assert b"person1@example.com" not in held and b"person10@example.com" in held

    problems = [
        p
        for request in sent
        for p in mailchimp_validator(SPECS).violations(
            request.method, request.url, request.headers, request.body or None
        )
    ]
    assert problems == []
    counted = operations(sent)
    assert counted["POST /lists/{list_id}"] == 3  # 500 + 500 + 100 members
    assert counted["POST /lists/{list_id}/merge-fields"] == 14  # the SW_* fields the audience lacked
    assert counted["POST /lists/{list_id}/members/{subscriber_hash}/tags"] == 0  # batched, not one by one
    assert counted["DELETE /lists/{list_id}/members/{subscriber_hash}"] == 0
    assert counted["POST /batches"] == 3 + 1 + 1 + 1 + 1
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in sent)


def test_batch_operations_are_validated_one_by_one(sandbox):  # noqa: F811
    headers = {**mailchimp_headers("k-us1"), "Content-Type": "application/json"}
    bad = {"method": "POST", "path": f"/lists/{AUDIENCE}/members/{'0' * 32}/tags", "body": '{"tags": 5}'}
    batch = httpx.post(f"{sandbox.url}/3.0/batches", json={"operations": [bad]}, headers=headers).json()
    status = httpx.get(f"{sandbox.url}/3.0/batches/{batch['id']}", headers=headers).json()
    assert (status["status"], status["errored_operations"]) == ("finished", 1)
    archive = httpx.get(status["response_body_url"]).content
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        [result] = orjson.loads(tar.extractfile(tar.getmembers()[0]).read())
    assert result["status_code"] == 400 and "is not of type 'array'" in result["response"]


def test_a_mailchimp_sync_of_1000_profiles_with_tags_takes_a_bounded_number_of_requests(
    warehouse_url,
    sandbox,  # noqa: F811
):
    world = build_world(warehouse_url, customers=1_140, seed=3)
    try:
        world.conn.execute(
            "update marts.dim_customers set is_contactable = false where customer_key in ("
            "  select customer_key from marts.dim_customers where is_contactable and is_email_valid"
            "  and subscription_status not in ('unsubscribed', 'bounced', 'complained')"
            "  order by customer_key offset 1000)"
        )
        world.conn.commit()
        contactable = len(world.contactable_emails())
        assert contactable == 1_000
        client = mailchimp(sandbox)
        result = run_sync(world.conn, client, f"mailchimp:{AUDIENCE}", AUDIENCE)
        assert result.added == contactable and result.failed == result.rejected == 0
        # merge fields: 1 read + 14 created; per 500 members: the upsert, the tags batch, one poll
        assert result.requests == 1 + 14 + 3 * 2 == 21
        audience = sandbox.store.mailchimp.audiences[AUDIENCE]
        assert len(audience) == contactable
        assert all(m["tags"][0] == "sendwise" and len(m["tags"]) == 2 for m in audience.values())
    finally:
        world.conn.close()


def test_customer_value_reaches_mailchimp_as_typed_merge_fields(warehouse_url, sandbox):  # noqa: F811
    world = build_world(warehouse_url)
    try:
        valued, unvalued = write_two_customer_values(world.conn)
        rows = world.conn.execute("select customer_key, email_encrypted from marts.dim_customers").fetchall()
        emails = {key: decrypt(ciphertext) for key, ciphertext in rows}
        sent: list[SentRequest] = []
        result = run_sync(world.conn, mailchimp(sandbox, sent), f"mailchimp:{AUDIENCE}", AUDIENCE)
        assert result.failed == result.rejected == 0
    finally:
        world.conn.close()
    audience = sandbox.store.mailchimp.audiences[AUDIENCE]
    fields = audience[subscriber_hash(emails[valued])]["merge_fields"]
    assert {tag: fields[tag] for tag in fields if tag.startswith("SW_") and tag not in OLD_TAGS} == {
        "SW_HCLV": 120.5,
        "SW_PCLV": 310.46,
        "SW_PALIVE": 0.812,
        "SW_CHURN": 0.457,
        "SW_CHURNB": "Medium",
        "SW_NEXTORD": "12/24/2026",
        "SW_AVGDAYS": 33.3,
        "SW_PROP30": 0.21,
        "SW_TOPCATS": "books, garden",
    }
    fields = audience[subscriber_hash(emails[unvalued])]["merge_fields"]
    assert "SW_PCLV" not in fields and fields["SW_CHURNB"] == fields["SW_NEXTORD"] == ""  # no prediction
    assert fields["SW_PROP30"] == 0.05
    kinds = sandbox.store.mailchimp.merge_field_types[AUDIENCE]
    assert (kinds["SW_NEXTORD"], kinds["SW_PCLV"], kinds["SW_TOPCATS"]) == ("date", "number", "text")
    validator = mailchimp_validator(SPECS)
    problems = [p for r in sent for p in validator.violations(r.method, r.url, r.headers, r.body or None)]
    assert problems == []


OLD_TAGS = {"SW_SEGMENT", "SW_HOUR", "SW_NEXT", "SW_ENGAGE", "SW_LTV"}


def test_the_mailchimp_sandbox_refuses_a_merge_value_of_the_wrong_type(sandbox):  # noqa: F811
    client = mailchimp(sandbox)
    good = ProfileRecord("k1", "good@example.com", "F", "L", {"sendwise_predicted_clv": 12.5})
    assert [o.status for o in client.upsert_profiles([good], AUDIENCE)] == ["ok"]
    headers = {**mailchimp_headers("k-us1"), "Content-Type": "application/json"}
    members = [
        {"email_address": "n@example.com", "status_if_new": "subscribed", "merge_fields": {"SW_PCLV": "12"}},
        {"email_address": "d@example.com", "status_if_new": "subscribed",
         "merge_fields": {"SW_NEXTORD": "2026-12-24"}},
    ]  # fmt: skip
    answer = httpx.post(
        f"{sandbox.url}/3.0/lists/{AUDIENCE}",
        json={"members": members, "update_existing": True},
        headers=headers,
    ).json()
    assert [e["error"] for e in answer["errors"]] == [
        "SW_PCLV: please enter a number (got '12')",
        "SW_NEXTORD: please enter the date in MM/DD/YYYY (got '2026-12-24')",
    ]
