"""What the local ESP sandbox holds: profiles, lists, import jobs, metrics, events and the Mailchimp
side, kept in memory and saved to `<state_dir>/state.json`; and the faults a test asks it to inject."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dagster_project.activation.sandbox_mailchimp import MailchimpState

STATE_FILE = "state.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_id() -> str:
    return "01" + uuid.uuid4().hex[:24].upper()


@dataclass
class Faults:
    rate_limited_requests: int = 0
    retry_after_seconds: int = 1
    server_error_requests: int = 0
    slow_requests: int = 0
    slow_seconds: float = 0.0
    fail_jobs_with_emails: set[str] = field(default_factory=set)
    reject_emails: dict[str, str] = field(default_factory=dict)

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "fail_jobs_with_emails":
                value = {v.lower() for v in value}
            elif key == "reject_emails":
                value = {k.lower(): v for k, v in value.items()}
            elif not hasattr(self, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, value)


class SandboxStore:
    """The sandbox's data: profiles, lists, import jobs, metrics and events. Thread-safe."""

    def __init__(self, state_dir: Path | None):
        self.state_dir = state_dir
        self.lock = threading.RLock()
        self.profiles: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, None]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.mailchimp = MailchimpState()
        self.request_count = 0
        self.requests: list[tuple[str, str, int]] = []
        self._by_email: dict[str, str] = {}
        self._by_external_id: dict[str, str] = {}
        self.load()

    # persistence ------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir else None

    def load(self) -> None:
        if not self.state_file or not self.state_file.exists():
            return
        state = orjson.loads(self.state_file.read_bytes())
        self.profiles = state.get("profiles", {})
        self.lists = {k: dict.fromkeys(v) for k, v in state.get("lists", {}).items()}
        self.metrics = state.get("metrics", {})
        self.events = state.get("events", [])
        self.mailchimp = MailchimpState.from_json(state.get("mailchimp"))
        self._reindex()

    def save(self) -> None:
        if not self.state_file:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "saved_at": now_iso(),
            "profiles": self.profiles,
            "lists": {k: list(v) for k, v in self.lists.items()},
            "metrics": self.metrics,
            "events": self.events,
            "mailchimp": self.mailchimp.to_json(),
        }
        temporary = self.state_file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(orjson.dumps(document))
        temporary.replace(self.state_file)

    def reset(self) -> None:
        with self.lock:
            self.profiles, self.lists, self.jobs, self.metrics, self.events = {}, {}, {}, {}, []
            self.mailchimp = MailchimpState()
            self.request_count, self.requests = 0, []
            self._reindex()
            self.save()

    def _reindex(self) -> None:
        self._by_email = {p["email"].lower(): pid for pid, p in self.profiles.items() if p.get("email")}
        self._by_external_id = {
            p["external_id"]: pid for pid, p in self.profiles.items() if p.get("external_id")
        }

    # profiles ---------------------------------------------------------------------------------
    def upsert_profile(self, attributes: dict[str, Any]) -> str:
        email = (attributes.get("email") or "").lower() or None
        external_id = attributes.get("external_id")
        profile_id = (external_id and self._by_external_id.get(external_id)) or (
            email and self._by_email.get(email)
        )
        stamp = now_iso()
        if profile_id is None:
            profile_id = new_id()
            self.profiles[profile_id] = {"id": profile_id, "created": stamp, "properties": {}}
        profile = self.profiles[profile_id]
        if profile.get("email") and profile["email"].lower() != email and email:
            self._by_email.pop(profile["email"].lower(), None)
        for key in ("email", "external_id", "first_name", "last_name", "phone_number"):
            if key in attributes:
                profile[key] = attributes[key]
        profile["properties"] = {**profile.get("properties", {}), **(attributes.get("properties") or {})}
        profile["updated"] = stamp
        if email:
            self._by_email[email] = profile_id
        if external_id:
            self._by_external_id[external_id] = profile_id
        return profile_id

    def forget(self, email: str) -> int:
        """Erase a person (data-privacy deletion): profiles with that email, their list memberships and
        events, and import errors quoting them. Returns the profiles removed."""
        wanted = email.lower()
        with self.lock:
            gone = {pid for pid, p in self.profiles.items() if (p.get("email") or "").lower() == wanted}
            for profile_id in gone:
                del self.profiles[profile_id]
            for members in self.lists.values():
                for profile_id in gone & set(members):
                    del members[profile_id]
            self.events = [e for e in self.events if e["profile_id"] not in gone]
            for job in self.jobs.values():
                job["errors"] = [e for e in job["errors"] if wanted not in orjson.dumps(e).decode().lower()]
            self._reindex()
            self.save()
        return len(gone)

    def find_by_email(self, email: str) -> dict[str, Any] | None:
        profile_id = self._by_email.get(email.lower())
        return self.profiles.get(profile_id) if profile_id else None

    def memberships(self, profile_id: str) -> list[str]:
        return sorted(list_id for list_id, members in self.lists.items() if profile_id in members)

    def add_event(self, metric_name: str, email: str, when: str, properties: dict[str, Any]) -> None:
        with self.lock:
            metric_id = self.metrics.setdefault(metric_name, new_id()[:6])
            profile = self.find_by_email(email)
            profile_id = profile["id"] if profile else self.upsert_profile({"email": email})
            self.events.append(
                {
                    "id": new_id(),
                    "metric_id": metric_id,
                    "profile_id": profile_id,
                    "datetime": when,
                    "event_properties": properties,
                }
            )


def read_state(state_dir: Path) -> dict[str, Any]:
    """The sandbox's saved state (for `sendwise esp show`), without a running server."""
    path = state_dir / STATE_FILE
    return orjson.loads(path.read_bytes()) if path.exists() else {"profiles": {}, "lists": {}}
