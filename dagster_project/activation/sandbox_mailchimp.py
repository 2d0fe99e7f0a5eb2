"""The Mailchimp Marketing API 3.0 subset of the local ESP sandbox (paths under `/3.0/`).

Audiences with members (keyed by subscriber hash), merge fields, tags, archive and permanent delete,
batch subscribe (`POST /lists/{id}`) and batch operations (`POST /batches`). Batch operations are
asynchronous as in Mailchimp: the batch is `pending` when created, `finished` on the next
`GET /batches/{id}`, and its results are a gzipped tar archive at `response_body_url` holding a JSON
array of `{status_code, operation_id, response}` (response: the operation's answer as a JSON string).
Every operation inside a batch is validated against the spec like a request of its own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from dagster_project.activation.mailchimp import subscriber_hash
from dagster_project.activation.spec_validation import SpecValidator

PREFIX = "/3.0"
MAX_MEMBERS_PER_CALL = 500
SIMPLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
RESULTS_PATH = "/__sandbox/mailchimp/batch-results/"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class MailchimpState:
    """audience id -> subscriber hash -> member; audience id -> merge field tags; batches in memory."""

    audiences: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    merge_fields: dict[str, list[str]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    merge_field_types: dict[str, dict[str, str]] = field(default_factory=dict)
    """audience id -> merge tag -> type (text when not created through the API)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "audiences": self.audiences,
            "merge_fields": self.merge_fields,
            "merge_field_types": self.merge_field_types,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> MailchimpState:
        document = document or {}
        return cls(
            document.get("audiences", {}),
            document.get("merge_fields", {}),
            merge_field_types=document.get("merge_field_types", {}),
        )


US_DATE = re.compile(r"(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[0-9]{4}")


def merge_value_problem(tag: str, kind: str, value: Any) -> str | None:
    """Mailchimp validates a merge value by its field's type (an empty string clears any field)."""
    if value == "":
        return None
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{tag}: please enter a number (got {value!r})"
    if kind == "date" and not (isinstance(value, str) and US_DATE.fullmatch(value)):
        return f"{tag}: please enter the date in MM/DD/YYYY (got {value!r})"
    if kind == "text" and not isinstance(value, str):
        return f"{tag}: please enter text (got {value!r})"
    return None


class MailchimpProblem(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail

    def document(self) -> dict[str, Any]:
        title = {400: "Invalid Resource", 404: "Resource Not Found"}.get(self.status, "Error")
        return {"type": "about:blank", "title": title, "status": self.status, "detail": self.detail}


class MailchimpSandbox:
    """Routing of the Mailchimp paths over `app.store.mailchimp` (saved with the rest of the store);
    `app.faults.reject_emails` applies here too."""

    def __init__(self, app: Any, validator: SpecValidator | None):
        self.app, self.validator = app, validator

    @property
    def state(self) -> MailchimpState:
        return self.app.store.mailchimp

    @property
    def lock(self) -> Any:
        return self.app.store.lock

    def violations(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> list[str]:
        if self.validator is not None:
            return self.validator.violations(method, raw_path, headers, body or None)
        if not headers.get("authorization", "").startswith("Basic "):
            return [f"{method} {raw_path}: missing or malformed authorization (Basic …)"]
        return []

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, base_url: str
    ) -> tuple[int, Any]:
        """(status, JSON document or None) for a request under /3.0; errors as Mailchimp's problem JSON."""
        try:
            with self.lock:
                answer = self._route(method, path.removeprefix(PREFIX), query, body, base_url)
                if method != "GET":
                    self.app.store.save()
                return answer
        except MailchimpProblem as problem:
            return problem.status, problem.document()

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, base_url: str):
        document = orjson.loads(body) if body else None
        if path == "/batches" and method == "POST":
            return 200, self.create_batch(document, base_url)
        if (match := re.fullmatch(r"/batches/([^/]+)", path)) and method == "GET":
            return 200, self.batch_status(match.group(1), base_url)
        if (match := re.fullmatch(r"/lists/([^/]+)/merge-fields", path)) and method in ("GET", "POST"):
            tags = self.state.merge_fields.setdefault(match.group(1), ["FNAME", "LNAME"])
            if method == "POST":
                tags.append(document["tag"])
                kinds = self.state.merge_field_types.setdefault(match.group(1), {})
                kinds[document["tag"]] = document.get("type", "text")
                return 200, {"tag": document["tag"], "name": document.get("name")}
            return 200, {"merge_fields": [{"tag": t} for t in tags], "total_items": len(tags)}
        if (match := re.fullmatch(r"/lists/([^/]+)", path)) and method == "POST":
            return 200, self.batch_subscribe(match.group(1), document)
        if (match := re.fullmatch(r"/lists/([^/]+)/members", path)) and method == "GET":
            return 200, self.members_page(match.group(1), query)
        if match := re.fullmatch(
            r"/lists/([^/]+)/members/([0-9a-f]{32})(/tags|/actions/delete-permanent)?", path
        ):
            list_id, member_hash, action = match.groups()
            member = self.state.audiences.get(list_id, {}).get(member_hash)
            if member is None:
                raise MailchimpProblem(404, f"The requested resource could not be found ({member_hash}).")
            if action == "/tags" and method == "POST":
                for tag in document["tags"]:
                    names = member.setdefault("tags", [])
                    if tag.get("status", "active") == "active" and tag["name"] not in names:
                        names.append(tag["name"])
                    elif tag.get("status") == "inactive" and tag["name"] in names:
                        names.remove(tag["name"])
                return 204, None
            if action == "/actions/delete-permanent" and method == "POST":
                del self.state.audiences[list_id][member_hash]
                self.scrub(member["email_address"])
                return 204, None
            if action is None and method == "DELETE":
                member["status"] = "archived"
                return 204, None
            if action is None and method == "GET":
                return 200, member
        raise LookupError(f"{method} {PREFIX}{path} is not part of the sandbox's Mailchimp subset")

    def scrub(self, email: str) -> None:
        """Batch results that quote a permanently deleted address lose their answer."""
        wanted = email.lower()
        for batch in self.state.batches.values():
            for result in batch["results"]:
                if wanted in result["response"].lower():
                    result["response"] = ""

    def batch_subscribe(self, list_id: str, document: dict[str, Any]) -> dict[str, Any]:
        members = document["members"]
        if len(members) > MAX_MEMBERS_PER_CALL:
            raise MailchimpProblem(400, f"{len(members)} members in one call; at most {MAX_MEMBERS_PER_CALL}")
        audience = self.state.audiences.setdefault(list_id, {})
        known = set(self.state.merge_fields.get(list_id, ["FNAME", "LNAME"]))
        created, updated, errors = [], [], []
        rejected = self.app.faults.reject_emails
        for item in members:
            email = item["email_address"]
            unknown = sorted(set(item.get("merge_fields") or {}) - known)
            reason = rejected.get(email.lower())
            if reason is None and not SIMPLE_EMAIL.fullmatch(email):
                reason = f"{email} looks fake or invalid, please enter a real email address."
            if reason is None and unknown:
                reason = f"merge fields {unknown} do not exist in this audience"
            if reason is None:
                kinds = self.state.merge_field_types.get(list_id, {})
                problems = (
                    merge_value_problem(tag, kinds.get(tag, "text"), value)
                    for tag, value in (item.get("merge_fields") or {}).items()
                )
                reason = next((problem for problem in problems if problem), None)
            if reason:
                errors.append({"email_address": email, "error": reason, "error_code": "ERROR_GENERIC"})
                continue
            key = subscriber_hash(email)
            member = audience.get(key)
            if member is not None and not document.get("update_existing"):
                errors.append(
                    {
                        "email_address": email,
                        "error": f"{email} is already a list member",
                        "error_code": "ERROR_CONTACT_EXISTS",
                    }
                )
                continue
            fresh = member is None or member.get("status") == "archived"
            member = member or {"id": key, "email_address": email, "list_id": list_id, "tags": []}
            member["merge_fields"] = {**member.get("merge_fields", {}), **(item.get("merge_fields") or {})}
            member["status"] = item.get("status") or item.get("status_if_new") or member.get("status")
            member["last_changed"] = _now()
            audience[key] = member
            (created if fresh else updated).append({"id": key, "email_address": email})
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
        }

    def members_page(self, list_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        status = (query.get("status") or [None])[0]
        count = int((query.get("count") or ["10"])[0])
        offset = int((query.get("offset") or ["0"])[0])
        members = [
            m
            for m in self.state.audiences.get(list_id, {}).values()
            if status is None or m["status"] == status
        ]
        return {"members": members[offset : offset + count], "total_items": len(members), "list_id": list_id}

    # batch operations -------------------------------------------------------------------------------
    def create_batch(self, document: dict[str, Any], base_url: str) -> dict[str, Any]:
        batch_id = hashlib.md5(f"{len(self.state.batches)}{_now()}".encode()).hexdigest()[:10]
        results = []
        headers = {"authorization": "Basic sandbox", "content-type": "application/json"}
        for operation in document["operations"]:
            method, path = operation["method"], operation["path"]
            params = operation.get("params") or {}
            body = (operation.get("body") or "").encode()
            raw = PREFIX + path + (f"?{urlencode(params)}" if params else "")
            problems = self.violations(method, raw, headers, body)
            if problems:
                status, answer = 400, MailchimpProblem(400, "; ".join(problems)).document()
            else:
                query = {k: [str(v)] for k, v in params.items()}
                try:
                    status, answer = self._route(method, path, query, body, base_url)
                except MailchimpProblem as problem:
                    status, answer = problem.status, problem.document()
                except LookupError as error:
                    status, answer = 404, MailchimpProblem(404, str(error)).document()
            results.append(
                {
                    "status_code": status,
                    "operation_id": operation.get("operation_id"),
                    "response": orjson.dumps(answer).decode() if answer is not None else "",
                }
            )
        self.state.batches[batch_id] = {
            "submitted_at": _now(),
            "results": results,
            "polls": 0,
        }
        return self.batch_resource(batch_id, base_url)

    def batch_status(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self.state.batches.get(batch_id)
        if batch is None:
            raise MailchimpProblem(404, f"no batch {batch_id}")
        batch["polls"] += 1
        return self.batch_resource(batch_id, base_url)

    def batch_resource(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self.state.batches[batch_id]
        finished = batch["polls"] >= 1
        results = batch["results"]
        return {
            "id": batch_id,
            "status": "finished" if finished else "pending",
            "total_operations": len(results),
            "finished_operations": len(results) if finished else 0,
            "errored_operations": sum(r["status_code"] >= 400 for r in results) if finished else 0,
            "submitted_at": batch["submitted_at"],
            "completed_at": _now() if finished else "",
            "response_body_url": f"{base_url}{RESULTS_PATH}{batch_id}.tar.gz" if finished else "",
        }

    def results_archive(self, batch_id: str) -> bytes | None:
        """The gzipped tar of a finished batch's results (what Mailchimp's response_body_url serves)."""
        with self.lock:
            batch = self.state.batches.get(batch_id)
            if batch is None or batch["polls"] < 1:
                return None
            payload = orjson.dumps(batch["results"])
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(f"{batch_id}/{batch_id}.json")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        return gzip.compress(buffer.getvalue())
