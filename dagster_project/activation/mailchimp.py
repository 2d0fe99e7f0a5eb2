"""Mailchimp Marketing API 3.0 adapter: batch member upsert (500 per call), merge fields, and tags,
archiving and permanent deletion through batch operations (`POST /batches`, polled, results read from
the batch's response archive only when some operation errored).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from dagster_project.activation.client import (
    ApiSession,
    EspClient,
    EspError,
    ProfileRecord,
    RecordOutcome,
    chunked,
    failed_outcomes,
    reading,
)
from dagster_project.activation.outbound import MAILCHIMP_LIMITS, clean_text, prepare_records

MAX_MEMBERS_PER_CALL = 500
MAX_OPERATIONS_PER_BATCH = 1_000
MAX_RESULTS_ARCHIVE_BYTES = 50_000_000
MAX_PAGES = 10_000

# Sendwise property -> (merge tag (at most 10 characters), merge field type, display name)
MERGE_FIELDS: dict[str, tuple[str, str, str]] = {
    "sendwise_segment": ("SW_SEGMENT", "text", "Sendwise segment"),
    "sendwise_best_send_hour": ("SW_HOUR", "number", "Sendwise best send hour of week"),
    "sendwise_next_send_at": ("SW_NEXT", "text", "Sendwise next send at (UTC)"),
    "sendwise_engagement_score": ("SW_ENGAGE", "number", "Sendwise engagement score"),
    "sendwise_lifetime_value": ("SW_LTV", "number", "Sendwise lifetime value"),
    "sendwise_historic_clv": ("SW_HCLV", "number", "Sendwise historic CLV"),
    "sendwise_predicted_clv": ("SW_PCLV", "number", "Sendwise predicted CLV (365 days)"),
    "sendwise_p_alive": ("SW_PALIVE", "number", "Sendwise P(alive)"),
    "sendwise_churn_risk": ("SW_CHURN", "number", "Sendwise churn risk (no order in 90 days)"),
    "sendwise_churn_risk_band": ("SW_CHURNB", "text", "Sendwise churn risk band"),
    "sendwise_expected_next_order_date": ("SW_NEXTORD", "date", "Sendwise expected next order date"),
    "sendwise_avg_days_between_orders": ("SW_AVGDAYS", "number", "Sendwise average days between orders"),
    "sendwise_purchase_propensity_30d": ("SW_PROP30", "number", "Sendwise P(order in 30 days)"),
    "sendwise_top_categories": ("SW_TOPCATS", "text", "Sendwise top categories"),
}
# Date merge fields are created with this format, and their values are written in it
DATE_FORMAT = "MM/DD/YYYY"


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
        value = merge_value(record.properties.get(prop), kind)
        merge_fields[tag] = value if value is not None else ("" if kind in ("text", "date") else None)
    merge_fields = {k: v for k, v in merge_fields.items() if v is not None}
    return {"email_address": record.email, "status_if_new": "subscribed", "merge_fields": merge_fields}


def merge_value(value: Any, kind: str) -> Any:
    """A Sendwise property as its merge field takes it: lists joined, ISO dates as DATE_FORMAT."""
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    if kind == "date" and value:
        year, month, day = str(value)[:10].split("-")
        return f"{month}/{day}/{year}"
    return value


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

    def __init__(
        self,
        session: ApiSession,
        list_id: str,
        *,
        upsert_batch_size: int = MAX_MEMBERS_PER_CALL,
        poll_interval: float = 1.0,
        batch_timeout: float = 600.0,
        max_pages: int = MAX_PAGES,
    ):
        self.session = session
        self.list_id = list_id
        self.upsert_batch_size = min(upsert_batch_size, MAX_MEMBERS_PER_CALL)
        self.removal_batch_size = MAX_OPERATIONS_PER_BATCH
        self.poll_interval, self.batch_timeout, self.max_pages = poll_interval, batch_timeout, max_pages
        self._merge_fields_ready: set[str] = set()

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.session.request_json(method, path, **kwargs)

    def ensure_merge_fields(self, list_id: str) -> None:
        """Create the Sendwise merge fields that the audience does not have yet (once per client)."""
        if list_id in self._merge_fields_ready:
            return
        path = f"/lists/{list_id}/merge-fields"
        document = self._json("GET", path, params={"count": 1000, "fields": "merge_fields.tag"})
        with reading(f"GET {path}"):
            existing = {field["tag"] for field in document.get("merge_fields") or []}
        for tag, kind, name in MERGE_FIELDS.values():
            if tag not in existing:
                body = {"name": name, "tag": tag, "type": kind, "required": False, "public": False}
                if kind == "date":
                    body["options"] = {"date_format": DATE_FORMAT}
                self.session.request("POST", path, json=body)
        self._merge_fields_ready.add(list_id)

    def upsert_profiles(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        """Batch subscribe (500 a call, errors per member in the answer), then one batch operation
        setting the tags of the members that went in. Records past Mailchimp's limits are not sent."""
        self.ensure_merge_fields(list_id)
        ready, outcomes = prepare_records(records, self.limits)
        for chunk in chunked(ready, self.upsert_batch_size):
            path = f"/lists/{list_id}"
            response = self._json(
                "POST", path, json={"members": [member_body(r) for r in chunk], "update_existing": True}
            )
            with reading(f"POST {path}"):
                errors = {
                    str(e["email_address"]).lower(): str(e.get("error") or "rejected")
                    for e in response.get("errors") or []
                }
            accepted = [r for r in chunk if r.email.lower() not in errors]
            outcomes += [
                RecordOutcome(r.customer_key, r.email, "rejected", errors[r.email.lower()])
                for r in chunk
                if r.email.lower() in errors
            ]
            operations = [
                tags_operation(list_id, r, [{"name": t, "status": "active"} for t in member_tags(r)])
                for r in accepted
            ]
            outcomes += self._outcomes(accepted, self._run_batch(operations))
        return outcomes

    def list_member_emails(self, list_id: str) -> set[str]:
        emails: set[str] = set()
        offset, page, path = 0, 1000, f"/lists/{list_id}/members"
        for _ in range(self.max_pages):
            document = self._json(
                "GET",
                path,
                params={
                    "fields": "members.email_address,total_items",
                    "count": page,
                    "offset": offset,
                    "status": "subscribed",
                },
            )
            with reading(f"GET {path}"):
                members = document.get("members") or []
                emails.update(str(m["email_address"]).lower() for m in members)
                total = int(document.get("total_items") or 0)
            offset += page
            if offset >= total or not members:  # an empty page ends it whatever total_items says
                return emails
        raise EspError(f"GET {path}: more than {self.max_pages} pages; stopped")

    def add_to_audience(self, records: Sequence[ProfileRecord], audience_id: str) -> list[RecordOutcome]:
        """Campaign audiences are tags on members of the configured audience (`self.list_id`)."""
        tags = [{"name": bounded_tag(f"sendwise-audience: {audience_id}"), "status": "active"}]
        return self._per_member(records, lambda r: tags_operation(self.list_id, r, tags))

    def remove_from_list(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        """Archive the members (Mailchimp keeps their history; they no longer count in the audience)."""
        operation = {"method": "DELETE"}
        return self._per_member(
            records, lambda r: {**operation, "path": member_path(list_id, r.email)}, missing_is_ok=True
        )

    def delete_profiles(self, emails: Sequence[str]) -> list[RecordOutcome]:
        """Permanent delete from the configured audience (`actions/delete-permanent`, through batch
        operations); a member Mailchimp does not have (404) counts as deleted."""
        records = [ProfileRecord("", email) for email in emails]
        return self._per_member(
            records,
            lambda r: {
                "method": "POST",
                "path": f"{member_path(self.list_id, r.email)}/actions/delete-permanent",
            },
            missing_is_ok=True,
        )

    def _per_member(self, records, operation_of, missing_is_ok: bool = False) -> list[RecordOutcome]:
        """One batch operation per member, up to MAX_OPERATIONS_PER_BATCH per batch."""
        outcomes: list[RecordOutcome] = []
        for chunk in chunked(records, MAX_OPERATIONS_PER_BATCH):
            results = self._run_batch([operation_of(r) for r in chunk])
            outcomes += self._outcomes(chunk, results, missing_is_ok)
        return outcomes

    @staticmethod
    def _outcomes(
        records: Sequence[ProfileRecord], results: dict[int, str] | str, missing_is_ok: bool = False
    ) -> list[RecordOutcome]:
        """Outcomes from a batch's errors (operation index -> reason), or all failed (a reason)."""
        if isinstance(results, str):
            return failed_outcomes(records, results)
        outcomes = []
        for index, record in enumerate(records):
            reason = results.get(index)
            if reason is None or (missing_is_ok and reason.startswith("404")):
                outcomes.append(RecordOutcome(record.customer_key, record.email, "ok"))
            else:
                outcomes.append(RecordOutcome(record.customer_key, record.email, "rejected", reason))
        return outcomes

    # batch operations ---------------------------------------------------------------------------------
    def _run_batch(self, operations: list[dict[str, Any]]) -> dict[int, str] | str:
        """Submit the operations as one batch and wait for it: {operation index: error} for the
        operations that errored (from the results archive), or one reason when the batch did not finish."""
        if not operations:
            return {}
        for index, operation in enumerate(operations):
            operation["operation_id"] = str(index)
        batch = self._json("POST", "/batches", json={"operations": operations})
        with reading("POST /batches"):
            batch_id = str(batch["id"])
        deadline = time.monotonic() + self.batch_timeout
        while True:
            with reading(f"GET /batches/{batch_id}"):
                status = str(batch["status"])
                if status == "finished":
                    errored = int(batch.get("errored_operations") or 0)
                    url = batch.get("response_body_url")
                    break
            if time.monotonic() > deadline:
                return f"batch {batch_id} still {status} after {self.batch_timeout}s"
            time.sleep(self.poll_interval)
            batch = self._json("GET", f"/batches/{batch_id}")
        if not errored:
            return {}
        if not isinstance(url, str) or not url:
            return f"batch {batch_id}: {errored} operations errored and no results archive"
        return self._batch_errors(batch_id, url)

    def _batch_errors(self, batch_id: str, url: str) -> dict[int, str]:
        """The errored operations of a finished batch, read from its results archive. The archive lives
        at a pre-signed URL (on Amazon S3 for Mailchimp): it is fetched without the API key."""
        if httpx.URL(url).scheme not in ("https", "http"):
            raise EspError(f"batch {batch_id}: results archive URL is not http(s)")
        try:
            data = fetch_bounded(url, self.session.client.timeout, MAX_RESULTS_ARCHIVE_BYTES)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                results = [
                    result
                    for member in archive.getmembers()
                    if member.isfile() and member.name.endswith(".json")
                    for result in orjson.loads(archive.extractfile(member).read())  # type: ignore[union-attr]
                ]
        except (httpx.HTTPError, tarfile.TarError, OSError, EOFError, orjson.JSONDecodeError) as error:
            raise EspError(f"batch {batch_id}: results archive unreadable ({type(error).__name__})") from None
        errors: dict[int, str] = {}
        with reading(f"batch {batch_id} results archive"):
            for result in results:
                status = int(result["status_code"])
                if status >= 400:
                    errors[int(result["operation_id"])] = f"{status} {problem_detail(result)}"
        return errors


def fetch_bounded(url: str, timeout: httpx.Timeout, max_bytes: int) -> bytes:
    """GET `url` with a client of its own (no API key, no redirects), at most `max_bytes` read."""
    with httpx.Client(timeout=timeout, follow_redirects=False) as bare, bare.stream("GET", url) as response:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{response.status_code}", request=response.request, response=response
            )
        data = bytearray()
        for part in response.iter_bytes():
            data += part
            if len(data) > max_bytes:
                raise tarfile.TarError(f"over {max_bytes} bytes")
        return bytes(data)


def member_path(list_id: str, email: str) -> str:
    return f"/lists/{list_id}/members/{subscriber_hash(email)}"


def tags_operation(list_id: str, record: ProfileRecord, tags: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": f"{member_path(list_id, record.email)}/tags",
        "body": orjson.dumps({"tags": tags}).decode(),
    }


def problem_detail(result: dict[str, Any]) -> str:
    """The `detail` of an operation's problem document (its response is JSON inside a string)."""
    try:
        problem = orjson.loads(result.get("response") or "{}")
    except orjson.JSONDecodeError:
        return str(result.get("response"))[:300]
    return (
        str(problem.get("detail") or problem.get("title") or "error")[:300]
        if isinstance(problem, dict)
        else ""
    )
