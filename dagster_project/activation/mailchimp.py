"""Mailchimp Marketing API 3.0 adapter: batch member upsert (500 per call), merge fields, tags."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from dagster_project.activation.client import (
    ApiSession,
    EspClient,
    EspRequestRejected,
    ProfileRecord,
    RecordOutcome,
    chunked,
)
from dagster_project.activation.outbound import MAILCHIMP_LIMITS, clean_text, prepare_records

MAX_MEMBERS_PER_CALL = 500

# Sendwise property -> (merge tag (at most 10 characters), merge field type, display name)
MERGE_FIELDS: dict[str, tuple[str, str, str]] = {
    "sendwise_segment": ("SW_SEGMENT", "text", "Sendwise segment"),
    "sendwise_best_send_hour": ("SW_HOUR", "number", "Sendwise best send hour of week"),
    "sendwise_next_send_at": ("SW_NEXT", "text", "Sendwise next send at (UTC)"),
    "sendwise_engagement_score": ("SW_ENGAGE", "number", "Sendwise engagement score"),
    "sendwise_lifetime_value": ("SW_LTV", "number", "Sendwise lifetime value"),
}


def mailchimp_base_url(api_key: str) -> str:
    """Keys end in the data centre (`…-us21`), which names the API host."""
    data_centre = api_key.rsplit("-", 1)[-1] if "-" in api_key else "us1"
    return f"https://{data_centre}.api.mailchimp.com/3.0"


def mailchimp_headers(api_key: str) -> dict[str, str]:
    token = base64.b64encode(f"sendwise:{api_key}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": "application/json"}


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def member_body(record: ProfileRecord) -> dict[str, Any]:
    merge_fields: dict[str, Any] = {"FNAME": record.first_name or "", "LNAME": record.last_name or ""}
    for prop, (tag, kind, _name) in MERGE_FIELDS.items():
        value = record.properties.get(prop)
        merge_fields[tag] = value if value is not None else ("" if kind == "text" else None)
    merge_fields = {k: v for k, v in merge_fields.items() if v is not None}
    return {"email_address": record.email, "status_if_new": "subscribed", "merge_fields": merge_fields}


def bounded_tag(text: str) -> str:
    return clean_text(text, MAILCHIMP_LIMITS.tag or 100)


def member_tags(record: ProfileRecord) -> list[str]:
    tags = ["sendwise"]
    if record.properties.get("sendwise_segment"):
        tags.append(bounded_tag(f"sendwise: {record.properties['sendwise_segment']}"))
    return tags


class MailchimpClient(EspClient):
    name = "mailchimp"
    limits = MAILCHIMP_LIMITS

    def __init__(self, session: ApiSession, list_id: str, *, upsert_batch_size: int = MAX_MEMBERS_PER_CALL):
        self.session = session
        self.list_id = list_id
        self.upsert_batch_size = min(upsert_batch_size, MAX_MEMBERS_PER_CALL)
        self.removal_batch_size = MAX_MEMBERS_PER_CALL
        self._merge_fields_ready: set[str] = set()

    def ensure_merge_fields(self, list_id: str) -> None:
        """Create the Sendwise merge fields that the audience does not have yet (once per client)."""
        if list_id in self._merge_fields_ready:
            return
        document = self.session.request(
            "GET", f"/lists/{list_id}/merge-fields", params={"count": 1000, "fields": "merge_fields.tag"}
        ).json()
        existing = {field["tag"] for field in document.get("merge_fields", [])}
        for tag, kind, name in MERGE_FIELDS.values():
            if tag not in existing:
                self.session.request(
                    "POST",
                    f"/lists/{list_id}/merge-fields",
                    json={"name": name, "tag": tag, "type": kind, "required": False, "public": False},
                )
        self._merge_fields_ready.add(list_id)

    def upsert_profiles(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        self.ensure_merge_fields(list_id)
        ready, outcomes = prepare_records(records, self.limits)
        for chunk in chunked(ready, self.upsert_batch_size):
            response = self.session.request(
                "POST",
                f"/lists/{list_id}",
                json={"members": [member_body(r) for r in chunk], "update_existing": True},
            ).json()
            errors = {
                e["email_address"].lower(): e.get("error", "rejected") for e in response.get("errors", [])
            }
            for record in chunk:
                if record.email.lower() in errors:
                    outcomes.append(
                        RecordOutcome(
                            record.customer_key, record.email, "rejected", errors[record.email.lower()]
                        )
                    )
                    continue
                self.session.request(
                    "POST",
                    f"/lists/{list_id}/members/{subscriber_hash(record.email)}/tags",
                    json={"tags": [{"name": tag, "status": "active"} for tag in member_tags(record)]},
                )
                outcomes.append(RecordOutcome(record.customer_key, record.email, "ok"))
        return outcomes

    def list_member_emails(self, list_id: str) -> set[str]:
        emails: set[str] = set()
        offset, page = 0, 1000
        while True:
            document = self.session.request(
                "GET",
                f"/lists/{list_id}/members",
                params={
                    "fields": "members.email_address,total_items",
                    "count": page,
                    "offset": offset,
                    "status": "subscribed",
                },
            ).json()
            emails.update(m["email_address"].lower() for m in document.get("members", []))
            offset += page
            if offset >= document.get("total_items", 0):
                return emails

    def add_to_audience(self, records: Sequence[ProfileRecord], audience_id: str) -> list[RecordOutcome]:
        """Campaign audiences are tags on members of the configured audience (`self.list_id`)."""
        tags = {"tags": [{"name": bounded_tag(f"sendwise-audience: {audience_id}"), "status": "active"}]}
        return self._per_member(records, "POST", "/tags", tags)

    def remove_from_list(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        """Archive the members (Mailchimp keeps their history; they no longer count in the audience)."""
        return self._per_member(records, "DELETE", "", None, list_id=list_id, missing_is_ok=True)

    def _per_member(
        self,
        records: Sequence[ProfileRecord],
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
        list_id: str | None = None,
        missing_is_ok: bool = False,
    ) -> list[RecordOutcome]:
        """One call per member (Mailchimp has no bulk form of these); a refusal is that member's outcome."""
        outcomes = []
        for record in records:
            path = f"/lists/{list_id or self.list_id}/members/{subscriber_hash(record.email)}{suffix}"
            try:
                self.session.request(method, path, json=body)
            except EspRequestRejected as error:
                if not (missing_is_ok and " 404 " in f" {error} "):
                    outcomes.append(RecordOutcome(record.customer_key, record.email, "rejected", str(error)))
                    continue
            outcomes.append(RecordOutcome(record.customer_key, record.email, "ok"))
        return outcomes
