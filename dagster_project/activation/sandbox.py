"""The local ESP sandbox: a small HTTP server speaking the Klaviyo API subset Sendwise uses, and under
`/3.0/` the Mailchimp subset (sandbox_mailchimp.py).

Every /api request is validated against ../shared/esp-specs when the spec files are there (else against
the sandbox's own checks of the fields it uses) and answered 4xx with the violation when it does not
conform. What it receives is kept in memory and in `<state_dir>/state.json` (read by `sendwise esp show`).
Faults for tests: 429 with Retry-After, 500s, slow answers (client timeouts), a persistent 500 for any
import job containing given emails, and per-profile rejections.

Admin endpoints (not Klaviyo's): GET /__sandbox/health, GET /__sandbox/stats, POST /__sandbox/faults,
POST /__sandbox/reset, POST /__sandbox/events.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from dagster_project.activation.sandbox_mailchimp import RESULTS_PATH, MailchimpSandbox
from dagster_project.activation.sandbox_store import Faults, SandboxStore, new_id, now_iso
from dagster_project.activation.spec_validation import SpecValidator, klaviyo_validator, mailchimp_validator

MAX_PROFILES_PER_JOB = 10_000
MAX_BODY_BYTES = 5_000_000
MAX_RELATIONSHIPS = 1_000


def own_checks(method: str, path: str, headers: dict[str, str], body: bytes) -> list[str]:
    """Checks of the fields the sandbox uses, for when the spec files are not available."""
    problems = []
    if not headers.get("authorization", "").startswith("Klaviyo-API-Key "):
        problems.append("missing or malformed authorization (Klaviyo-API-Key …)")
    if "revision" not in headers:
        problems.append("header 'revision' is required")
    if method in ("POST", "DELETE"):
        if headers.get("content-type", "").split(";")[0] != "application/vnd.api+json":
            problems.append("content-type must be application/vnd.api+json")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return [*problems, "body is not JSON"]
        data = document.get("data") if isinstance(document, dict) else None
        if path == "/api/profile-bulk-import-jobs":
            if not isinstance(data, dict) or data.get("type") != "profile-bulk-import-job":
                problems.append("body at /data/type: must be 'profile-bulk-import-job'")
            else:
                for index, profile in enumerate(
                    data.get("attributes", {}).get("profiles", {}).get("data", [])
                ):
                    if profile.get("type") != "profile" or not isinstance(profile.get("attributes"), dict):
                        problems.append(f"body at /data/attributes/profiles/data/{index}: not a profile")
        elif path.endswith("/relationships/profiles") and (
            not isinstance(data, list)
            or any(
                not isinstance(item, dict)
                or item.get("type") != "profile"
                or not isinstance(item.get("id"), str)
                for item in data
            )
        ):
            problems.append("body at /data: must be a list of {type: profile, id}")
    return [f"{method} {path}: {problem}" for problem in problems]


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _reply(self, status: int, document: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = orjson.dumps(document) if document is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _error(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        code = {400: "invalid", 404: "not_found", 413: "too_large", 429: "throttled"}.get(status, "error")
        self._reply(
            status,
            {"errors": [{"status": str(status), "code": code, "title": code, "detail": detail}]},
            headers,
        )

    def _handle(self, method: str) -> None:
        self.server.last_activity = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        app = self.server.app
        if path.startswith("/__sandbox/"):
            return self._admin(method, path, body)
        status = app.preflight(method, path, body, {k.lower(): v for k, v in self.headers.items()}, self.path)
        if status is not None:
            code, detail, headers = status
            app.log(method, path, code)
            return self._error(code, detail, headers)
        try:
            code, document = app.route(method, path, query, body, self._base_url())
        except LookupError as error:
            app.log(method, path, 404)
            return self._error(404, str(error))
        except ValueError as error:
            app.log(method, path, 400)
            return self._error(400, str(error))
        app.log(method, path, code)
        self._reply(code, document)

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or 'localhost'}"

    def _admin(self, method: str, path: str, body: bytes) -> None:
        app = self.server.app
        if path.startswith(RESULTS_PATH) and path.endswith(".tar.gz") and method == "GET":
            archive = app.mailchimp.results_archive(path.removeprefix(RESULTS_PATH).removesuffix(".tar.gz"))
            if archive is None:
                return self._error(404, "no such finished batch")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)
            return None
        if path == "/__sandbox/health":
            state_dir = str(app.store.state_dir.resolve()) if app.store.state_dir else None
            return self._reply(
                200, {"ok": True, "validating_against": app.validation_source, "state_dir": state_dir}
            )
        if path == "/__sandbox/stats":
            return self._reply(200, app.stats())
        if path == "/__sandbox/faults" and method == "POST":
            try:
                app.faults.update(orjson.loads(body or b"{}"))
            except ValueError as error:
                return self._error(400, str(error))
            return self._reply(200, {"ok": True})
        if path == "/__sandbox/reset" and method == "POST":
            app.store.reset()
            app.faults = Faults()
            return self._reply(200, {"ok": True})
        if path == "/__sandbox/events" and method == "POST":
            for event in orjson.loads(body).get("events", []):
                app.store.add_event(
                    event["metric"], event["email"], event["datetime"], event.get("properties", {})
                )
            app.store.save()
            return self._reply(200, {"ok": True})
        return self._error(404, f"no admin endpoint {method} {path}")


class SandboxApp:
    """Routing, validation and fault injection, independent of the HTTP plumbing."""

    def __init__(
        self,
        store: SandboxStore,
        validator: SpecValidator | None,
        job_polls_until_complete: int = 1,
        mailchimp: SpecValidator | None = None,
    ):
        self.store = store
        self.validator = validator
        self.mailchimp = MailchimpSandbox(self, mailchimp)
        self.faults = Faults()
        self.job_polls_until_complete = job_polls_until_complete
        self.fault_lock = threading.Lock()

    @property
    def validation_source(self) -> str:
        return ", ".join(p.name for p in self.validator.spec_files) if self.validator else "own field checks"

    def log(self, method: str, path: str, status: int) -> None:
        with self.store.lock:
            self.store.request_count += 1
            self.store.requests.append((method, path, status))
            del self.store.requests[:-1000]

    def stats(self) -> dict[str, Any]:
        with self.store.lock:
            return {
                "request_count": self.store.request_count,
                "recent_requests": self.store.requests[-50:],
                "profiles": len(self.store.profiles),
                "lists": {k: len(v) for k, v in self.store.lists.items()},
                "events": len(self.store.events),
                "mailchimp_audiences": {k: len(v) for k, v in self.store.mailchimp.audiences.items()},
            }

    def preflight(
        self, method: str, path: str, body: bytes, headers: dict[str, str], raw_path: str
    ) -> tuple[int, str, dict[str, str] | None] | None:
        """Fault injection, then validation. Returns (status, detail, headers) to answer with, or None."""
        with self.fault_lock:
            faults = self.faults
            if faults.rate_limited_requests > 0:
                faults.rate_limited_requests -= 1
                return 429, "rate limit exceeded", {"Retry-After": str(faults.retry_after_seconds)}
            if faults.server_error_requests > 0:
                faults.server_error_requests -= 1
                return 500, "injected server error", None
            delay = 0.0
            if faults.slow_requests > 0:
                faults.slow_requests -= 1
                delay = faults.slow_seconds
        if delay:
            time.sleep(delay)
        if len(body) > MAX_BODY_BYTES:
            return 413, f"request body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", None
        if path.startswith("/3.0/"):
            problems = self.mailchimp.violations(method, raw_path, headers, body)
        elif self.validator is not None:
            problems = self.validator.violations(method, raw_path, headers, body or None)
        else:
            problems = own_checks(method, path, headers, body)
        if problems:
            return 400, "; ".join(problems), None
        if path == "/api/profile-bulk-import-jobs" and method == "POST" and faults.fail_jobs_with_emails:
            emails = {
                (p.get("attributes", {}).get("email") or "").lower()
                for p in orjson.loads(body)["data"]["attributes"]["profiles"]["data"]
            }
            if emails & faults.fail_jobs_with_emails:
                return 500, "injected persistent failure for this batch", None
        return None

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, base_url: str):
        if path.startswith("/3.0/"):
            return self.mailchimp.handle(method, path, query, body, base_url)
        document = orjson.loads(body) if body else None
        if path == "/api/profile-bulk-import-jobs" and method == "POST":
            return 202, self.create_import_job(document)
        if match := re.fullmatch(r"/api/profile-bulk-import-jobs/([^/]+)", path):
            return 200, {"data": self.job_resource(match.group(1), poll=True)}
        if match := re.fullmatch(r"/api/profile-bulk-import-jobs/([^/]+)/import-errors", path):
            return 200, self.import_errors(match.group(1), query, base_url, path)
        if match := re.fullmatch(r"/api/lists/([^/]+)/relationships/profiles", path):
            if method == "GET":
                raise ValueError("listing list members is not supported by the sandbox")
            return 204, self.change_membership(match.group(1), method, document)
        if (match := re.fullmatch(r"/api/lists/([^/]+)/profiles", path)) and method == "GET":
            with self.store.lock:
                members = list(self.store.lists.get(match.group(1), {}))
                resources = [_profile_resource(self.store.profiles[i]) for i in members]
            return 200, _page(resources, query, base_url, path, default_size=20)
        if path == "/api/profiles" and method == "GET":
            return 200, self.query_profiles(query)
        if path == "/api/metrics" and method == "GET":
            with self.store.lock:
                data = [
                    {"type": "metric", "id": mid, "attributes": {"name": name}}
                    for name, mid in self.store.metrics.items()
                ]
            return 200, {"data": data, "links": {"self": base_url + path, "next": None}}
        if path == "/api/events" and method == "GET":
            return 200, self.query_events(query, base_url, path)
        if path == "/api/data-privacy-deletion-jobs" and method == "POST":
            profile = document["data"]["attributes"]["profile"]["data"]["attributes"]
            if set(profile) != {"email"}:
                raise ValueError("the sandbox deletes by email only")
            self.store.forget(profile["email"])
            return 202, None
        raise LookupError(f"{method} {path} is not part of the sandbox's Klaviyo subset")

    def create_import_job(self, document: dict[str, Any]) -> dict[str, Any]:
        data = document["data"]
        profiles = data["attributes"]["profiles"]["data"]
        if len(profiles) > MAX_PROFILES_PER_JOB:
            raise ValueError(f"{len(profiles)} profiles in one job; at most {MAX_PROFILES_PER_JOB}")
        list_ids = [item["id"] for item in (data.get("relationships") or {}).get("lists", {}).get("data", [])]
        errors, imported = [], []
        with self.store.lock:
            for index, profile in enumerate(profiles):
                attributes = profile["attributes"]
                email = (attributes.get("email") or "").lower()
                reason = self.faults.reject_emails.get(email)
                if reason is None and not (email or attributes.get("external_id")):
                    reason = "a profile needs an email or an external_id"
                if reason is None and email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                    reason = f"invalid email address {email!r}"
                if reason:
                    errors.append(
                        {
                            "type": "import-error",
                            "id": str(uuid.uuid4()),
                            "attributes": {
                                "code": "invalid",
                                "title": "Invalid input",
                                "detail": reason,
                                "source": {"pointer": f"/data/attributes/profiles/data/{index}"},
                                "original_payload": attributes,
                            },
                        }
                    )
                    continue
                imported.append(self.store.upsert_profile(attributes))
            for list_id in list_ids:
                members = self.store.lists.setdefault(list_id, {})
                members.update(dict.fromkeys(imported))
            job_id = new_id()
            self.store.jobs[job_id] = {
                "status": "queued",
                "polls": 0,
                "created_at": now_iso(),
                "total_count": len(profiles),
                "completed_count": len(imported),
                "failed_count": len(errors),
                "errors": errors,
                "lists": list_ids,
            }
            self.store.save()
        return {"data": self.job_resource(job_id, poll=False)}

    def job_resource(self, job_id: str, poll: bool) -> dict[str, Any]:
        with self.store.lock:
            job = self.store.jobs.get(job_id)
            if job is None:
                raise LookupError(f"no import job {job_id}")
            if poll:
                job["polls"] += 1
                job["status"] = "complete" if job["polls"] >= self.job_polls_until_complete else "processing"
            complete = job["status"] == "complete"
            return {
                "type": "profile-bulk-import-job",
                "id": job_id,
                "attributes": {
                    "status": job["status"],
                    "created_at": job["created_at"],
                    "total_count": job["total_count"],
                    "completed_count": job["completed_count"] if complete else 0,
                    "failed_count": job["failed_count"] if complete else 0,
                    "completed_at": now_iso() if complete else None,
                },
            }

    def import_errors(self, job_id: str, query: dict[str, list[str]], base_url: str, path: str) -> dict:
        with self.store.lock:
            job = self.store.jobs.get(job_id)
            if job is None:
                raise LookupError(f"no import job {job_id}")
            errors = job["errors"]
        return _page(errors, query, base_url, path, default_size=20)

    def change_membership(self, list_id: str, method: str, document: dict[str, Any]) -> None:
        ids = [item["id"] for item in document["data"]]
        if len(ids) > MAX_RELATIONSHIPS:
            raise ValueError(f"{len(ids)} profiles in one call; at most {MAX_RELATIONSHIPS}")
        with self.store.lock:
            unknown = [i for i in ids if i not in self.store.profiles]
            if unknown:
                raise ValueError(f"unknown profile ids: {unknown[:5]}")
            members = self.store.lists.setdefault(list_id, {})
            for profile_id in ids:
                if method == "POST":
                    members[profile_id] = None
                else:
                    members.pop(profile_id, None)
            self.store.save()
        return None

    def query_profiles(self, query: dict[str, list[str]]) -> dict[str, Any]:
        condition = (query.get("filter") or [""])[0]
        match = re.fullmatch(r"(any|equals)\((email|external_id),(.*)\)", condition)
        if not match:
            raise ValueError(
                f"the sandbox supports filter any/equals on email or external_id, got {condition!r}"
            )
        operator, attribute, raw = match.groups()
        values = orjson.loads(raw.replace("'", '"')) if operator == "any" else [raw.strip("'\"")]
        size = int((query.get("page[size]") or ["20"])[0])
        if len(values) > size:
            raise ValueError(f"{len(values)} values with page[size]={size}: results would be paged")
        with self.store.lock:
            if attribute == "email":
                found = [self.store.find_by_email(v) for v in values]
            else:
                found = [self.store.profiles.get(self.store._by_external_id.get(v, "")) for v in values]
        return {"data": [_profile_resource(p) for p in found if p], "links": {"next": None}}

    def query_events(self, query: dict[str, list[str]], base_url: str, path: str) -> dict[str, Any]:
        condition = (query.get("filter") or [""])[0]
        metric = re.search(r"equals\(metric_id,'([^']+)'\)", condition)
        after = re.search(r"greater-than\(datetime,([^)]+)\)", condition)
        with self.store.lock:
            events = [
                e
                for e in self.store.events
                if (not metric or e["metric_id"] == metric.group(1))
                and (
                    not after
                    or datetime.fromisoformat(e["datetime"]) > datetime.fromisoformat(after.group(1))
                )
            ]
            events.sort(key=lambda e: e["datetime"])
            resources = [
                {
                    "type": "event",
                    "id": e["id"],
                    "attributes": {
                        "datetime": e["datetime"],
                        "event_properties": e["event_properties"],
                        "timestamp": int(datetime.fromisoformat(e["datetime"]).timestamp()),
                    },
                    "relationships": {
                        "profile": {"data": {"type": "profile", "id": e["profile_id"]}},
                        "metric": {"data": {"type": "metric", "id": e["metric_id"]}},
                    },
                }
                for e in events
            ]
            page = _page(resources, query, base_url, path, default_size=200)
            if "profile" in (query.get("include") or [""])[0]:
                ids = {r["relationships"]["profile"]["data"]["id"] for r in page["data"]}
                page["included"] = [
                    _profile_resource(self.store.profiles[i]) for i in ids if i in self.store.profiles
                ]
        return page


def _profile_resource(profile: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in profile.items() if k != "id"}
    return {"type": "profile", "id": profile["id"], "attributes": attributes}


def _page(items: list, query: dict[str, list[str]], base_url: str, path: str, default_size: int) -> dict:
    size = int((query.get("page[size]") or [str(default_size)])[0])
    start = int((query.get("page[cursor]") or ["0"])[0] or 0)
    next_url = None
    if start + size < len(items):
        params = {k: v[0] for k, v in query.items()}
        params["page[cursor]"] = str(start + size)
        next_url = f"{base_url}{path}?{urlencode(params)}"
    return {"data": items[start : start + size], "links": {"self": f"{base_url}{path}", "next": next_url}}


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp):
        super().__init__(address, SandboxHandler)
        self.app = app
        self.last_activity = time.monotonic()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up waiting (a timeout test): nothing to report
        super().handle_error(request, client_address)


class Sandbox:
    """A running sandbox (in a background thread of this process). `url`, `store`, `faults`, `stop()`."""

    def __init__(
        self,
        state_dir: Path | None,
        specs_dir: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        job_polls_until_complete: int = 1,
    ):
        validator = klaviyo_validator(specs_dir) if specs_dir else None
        mailchimp = mailchimp_validator(specs_dir) if specs_dir else None
        self.app = SandboxApp(SandboxStore(state_dir), validator, job_polls_until_complete, mailchimp)
        self.server = SandboxHTTPServer((host, port), self.app)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread: threading.Thread | None = None

    @property
    def store(self) -> SandboxStore:
        return self.app.store

    @property
    def faults(self) -> Faults:
        return self.app.faults

    def start(self) -> Sandbox:
        self.thread = threading.Thread(target=self.server.serve_forever, name="esp-sandbox", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_when_idle(server: SandboxHTTPServer, idle_seconds: float) -> None:
    """Background sandboxes (started by a sync) go away by themselves; their state file stays."""
    while time.monotonic() - server.last_activity < idle_seconds:
        time.sleep(min(idle_seconds, 5.0))
    server.shutdown()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops serve_forever like Ctrl-C (and removes the pid file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local ESP sandbox (Klaviyo API subset).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--specs-dir", type=Path, default=None)
    parser.add_argument(
        "--idle-exit", type=float, default=0, help="stop after this many seconds without a request (0: never)"
    )
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.state_dir, args.specs_dir, args.host, args.port)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = args.state_dir / "server.pid"
    pid_file.write_text(str(os.getpid()))
    (args.state_dir / "server.url").write_text(sandbox.url)
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"ESP sandbox on {sandbox.url} (state {args.state_dir}, validating: {sandbox.app.validation_source})",
        flush=True,
    )
    if args.idle_exit > 0:
        threading.Thread(target=_exit_when_idle, args=(sandbox.server, args.idle_exit), daemon=True).start()
    try:
        sandbox.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.server.server_close()
        if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
            pid_file.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
