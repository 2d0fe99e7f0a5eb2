"""Klaviyo adapter (revision 2026-07-15): profile bulk import jobs, list membership, events extraction.

Also the adapter for the local ESP sandbox, which speaks the same subset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson

from dagster_project.activation.client import (
    ApiSession,
    EspClient,
    EspError,
    EspRequestRejected,
    PageGuard,
    ProfileRecord,
    RecordOutcome,
    chunked,
    failed_outcomes,
    reading,
)
from dagster_project.activation.outbound import KLAVIYO_LIMITS, prepare_records

REVISION = "2026-07-15"
JSON_API = "application/vnd.api+json"
MAX_PROFILES_PER_JOB = 10_000
MAX_JOB_BYTES = 5_000_000
MAX_LIST_RELATIONSHIPS = 1_000
MAX_PROFILES_PAGE = 100
MAX_PAGES = 10_000  # per listing: 1M profiles at 100 a page; a longer listing is a server fault

# Klaviyo metric names -> the event_type of the ESP event files (contracts.md).
METRIC_EVENT_TYPES = {
    "Sent Email": "sent",
    "Received Email": "delivered",
    "Opened Email": "open",
    "Clicked Email": "click",
    "Bounced Email": "bounce",
    "Unsubscribed from Email Marketing": "unsubscribe",
    "Unsubscribed": "unsubscribe",
    "Marked Email as Spam": "spam_complaint",
}


def klaviyo_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Klaviyo-API-Key {api_key}", "revision": REVISION, "Accept": JSON_API}


def profile_resource(record: ProfileRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {"email": record.email, "external_id": record.customer_key}
    if record.first_name is not None:
        attributes["first_name"] = record.first_name
    if record.last_name is not None:
        attributes["last_name"] = record.last_name
    if record.properties:
        attributes["properties"] = record.properties
    return {"type": "profile", "attributes": attributes}


def import_job_body(records: Sequence[ProfileRecord], list_id: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": [profile_resource(r) for r in records]}},
    }
    if list_id:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": data}


def size_bounded_chunks(records: Sequence[ProfileRecord], max_count: int, max_bytes: int) -> Iterator[list]:
    """Chunks of at most max_count records whose JSON stays under max_bytes (with room for the envelope)."""
    chunk: list[ProfileRecord] = []
    size = 0
    for record in records:
        record_size = len(orjson.dumps(profile_resource(record))) + 1
        if chunk and (len(chunk) >= max_count or size + record_size > max_bytes - 1_000):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


class KlaviyoClient(EspClient):
    name = "klaviyo"
    limits = KLAVIYO_LIMITS

    def __init__(
        self,
        session: ApiSession,
        *,
        upsert_batch_size: int = MAX_PROFILES_PER_JOB,
        removal_batch_size: int = MAX_LIST_RELATIONSHIPS,
        poll_interval: float = 1.0,
        job_timeout: float = 600.0,
        max_pages: int = MAX_PAGES,
    ):
        self.session = session
        self.max_pages = max_pages
        self.upsert_batch_size = min(upsert_batch_size, MAX_PROFILES_PER_JOB)
        self.removal_batch_size = min(removal_batch_size, MAX_LIST_RELATIONSHIPS)
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout

    def _call(self, method: str, path: str, **kwargs: Any):
        return self.session.request(method, path, content_type=JSON_API, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.session.request_json(method, path, content_type=JSON_API, **kwargs)

    def _pages(self, path: str, params: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        """The documents of a cursor-paged listing, following `links.next` only within the API origin,
        never to a page already read and for at most `max_pages` pages (else UnsafePagination)."""
        guard = PageGuard(f"GET {path}", self.session.origin, self.max_pages)
        guard.check(str(self.session.client.build_request("GET", path, params=params).url))
        while True:
            document = self._json("GET", path, params=params)
            yield document
            with reading(f"GET {path} links"):
                next_url = (document.get("links") or {}).get("next")
                if next_url is not None and not isinstance(next_url, str):
                    raise TypeError(f"links.next is a {type(next_url).__name__}")
            if not next_url:
                return
            path, params = guard.check(next_url), None

    # profiles -------------------------------------------------------------------------------------
    def upsert_profiles(self, records: Sequence[ProfileRecord], list_id: str | None) -> list[RecordOutcome]:
        """One bulk import job per chunk; waits for each job and reads its import errors. Records
        that break Klaviyo's limits once cleaned are not sent (outcome `rejected`, with the reason)."""
        ready, outcomes = prepare_records(records, self.limits)
        for chunk in size_bounded_chunks(ready, self.upsert_batch_size, MAX_JOB_BYTES):
            outcomes += self._run_import_job(chunk, list_id)
        return outcomes

    def _run_import_job(self, records: Sequence[ProfileRecord], list_id: str | None) -> list[RecordOutcome]:
        document = self._json("POST", "/api/profile-bulk-import-jobs", json=import_job_body(records, list_id))
        with reading("POST /api/profile-bulk-import-jobs"):
            job_id = str(document["data"]["id"])
        job = self._wait_for_job(job_id)
        if job["status"] == "cancelled":
            return failed_outcomes(records, f"import job {job_id} was cancelled")
        rejected: dict[str, str] = {}
        if job.get("failed_count"):
            rejected = self._import_errors(job_id)
        return [
            RecordOutcome(r.customer_key, r.email, "rejected", rejected[r.email.lower()])
            if r.email.lower() in rejected
            else RecordOutcome(r.customer_key, r.email, "ok")
            for r in records
        ]

    def _wait_for_job(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout
        while True:
            document = self._json("GET", f"/api/profile-bulk-import-jobs/{job_id}")
            with reading(f"GET /api/profile-bulk-import-jobs/{job_id}"):
                attributes = document["data"]["attributes"]
                if attributes["status"] in ("complete", "cancelled"):
                    return attributes
            if time.monotonic() > deadline:
                raise EspError(f"import job {job_id} still {attributes['status']} after {self.job_timeout}s")
            time.sleep(self.poll_interval)

    def _import_errors(self, job_id: str) -> dict[str, str]:
        """email (lower case) -> the ESP's reason, from the job's import errors."""
        errors: dict[str, str] = {}
        path = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        for document in self._pages(path, {"page[size]": MAX_PROFILES_PAGE}):
            with reading(f"GET {path}"):
                for error in document.get("data") or []:
                    attributes = error.get("attributes") or {}
                    payload = attributes.get("original_payload") or {}
                    nested = payload.get("attributes") or {}
                    email = str(payload.get("email") or nested.get("email") or "").lower()
                    errors[email] = (
                        f"{attributes.get('code')}: {attributes.get('detail') or attributes.get('title')}"
                    )
        return errors

    # list membership ------------------------------------------------------------------------------
    def remove_from_list(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        ids = self.profile_ids([r.email for r in records])
        present = [ids[r.email.lower()] for r in records if r.email.lower() in ids]
        for chunk in chunked(present, self.removal_batch_size):
            self._call(
                "DELETE",
                f"/api/lists/{list_id}/relationships/profiles",
                json={"data": [{"type": "profile", "id": profile_id} for profile_id in chunk]},
            )
        return [RecordOutcome(r.customer_key, r.email, "ok") for r in records]

    def list_member_emails(self, list_id: str) -> set[str]:
        emails: set[str] = set()
        path = f"/api/lists/{list_id}/profiles"
        params = {"fields[profile]": "email", "page[size]": MAX_PROFILES_PAGE}
        for document in self._pages(path, params):
            with reading(f"GET {path}"):
                emails.update(
                    str((p.get("attributes") or {}).get("email") or "").lower()
                    for p in document.get("data") or []
                )
        emails.discard("")
        return emails

    def profile_ids(self, emails: Sequence[str]) -> dict[str, str]:
        """email (lower case) -> Klaviyo profile id, for the emails that have a profile."""
        found: dict[str, str] = {}
        for chunk in chunked(list(emails), MAX_PROFILES_PAGE):
            quoted = ",".join(orjson.dumps(email).decode() for email in chunk)
            params = {"filter": f"any(email,[{quoted}])", "page[size]": MAX_PROFILES_PAGE}
            document = self._json("GET", "/api/profiles", params=params)
            with reading("GET /api/profiles"):
                for profile in document.get("data") or []:
                    email = str((profile.get("attributes") or {}).get("email") or "").lower()
                    found[email] = str(profile["id"])
        found.pop("", None)
        return found

    # erasure ----------------------------------------------------------------------------------------
    def delete_profiles(self, emails: Sequence[str]) -> list[RecordOutcome]:
        """One data-privacy deletion job per email (the API takes one identifier per request); Klaviyo
        deletes every profile matching it, asynchronously. A refused or failed request is that email's
        outcome; the others go on."""
        outcomes = []
        for email in emails:
            body = {
                "data": {
                    "type": "data-privacy-deletion-job",
                    "attributes": {"profile": {"data": {"type": "profile", "attributes": {"email": email}}}},
                }
            }
            try:
                self._call("POST", "/api/data-privacy-deletion-jobs", json=body)
            except EspRequestRejected as error:
                outcomes.append(RecordOutcome("", email, "rejected", str(error)))
                continue
            except EspError as error:
                outcomes.append(RecordOutcome("", email, "failed", str(error)))
                continue
            outcomes.append(RecordOutcome("", email, "ok"))
        return outcomes

    # events extraction ----------------------------------------------------------------------------
    def metrics(self) -> dict[str, str]:
        """metric name -> metric id."""
        names: dict[str, str] = {}
        for document in self._pages("/api/metrics", None):
            with reading("GET /api/metrics"):
                names.update({m["attributes"]["name"]: m["id"] for m in document.get("data") or []})
        return names

    def iter_events(self, since: datetime | None = None, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Email engagement events as rows of the ESP event file shape (contracts.md), oldest first."""
        for metric_name, metric_id in self.metrics().items():
            event_type = METRIC_EVENT_TYPES.get(metric_name)
            if event_type is None:
                continue
            condition = f"equals(metric_id,'{metric_id}')"
            if since is not None:
                condition += f",greater-than(datetime,{since.isoformat()})"
            params = {"filter": condition, "include": "profile", "page[size]": page_size, "sort": "datetime"}
            for document in self._pages("/api/events", params):
                with reading("GET /api/events"):
                    emails = {
                        p["id"]: (p.get("attributes") or {}).get("email")
                        for p in document.get("included") or []
                        if p.get("type") == "profile"
                    }
                    rows = [event_file_row(event, event_type, emails) for event in document.get("data") or []]
                yield from rows


def event_file_row(event: dict[str, Any], event_type: str, emails: dict[str, str]) -> dict[str, Any]:
    attributes = event.get("attributes") or {}
    props = attributes.get("event_properties") or {}
    profile_id = (((event.get("relationships") or {}).get("profile") or {}).get("data") or {}).get("id")
    row = {
        "event_id": event["id"],
        "event_type": event_type,
        "profile_id": profile_id,
        "email": emails.get(profile_id) if profile_id else None,
        "campaign_id": props.get("campaign_id") or props.get("$campaign"),
        "message_id": props.get("$message") or props.get("message_id"),
        "timestamp": attributes.get("datetime"),
    }
    if event_type in ("open", "click"):
        row["user_agent"] = props.get("user_agent") or props.get("$user_agent")
        row["ip"] = props.get("ip") or props.get("$ip")
    if event_type == "click":
        row["url"] = props.get("URL") or props.get("url")
    if event_type == "bounce":
        row["bounce_type"] = props.get("bounce_type") or props.get("Bounce Type")
    return row


def extract_klaviyo_events(client: KlaviyoClient, since: datetime | None = None) -> list[dict[str, Any]]:
    """For the ESP source of the ingestion: engagement events pulled from a Klaviyo(-compatible) API."""
    return list(client.iter_events(since))
