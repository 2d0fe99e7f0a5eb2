"""The ESP client interface, per-record outcomes, and the HTTP session every adapter shares.

The session owns the network manners: a token-bucket rate limiter that also honours `Retry-After`,
and retries with exponential backoff for 429, 5xx and timeouts (tenacity). Secrets live in headers
only and are never logged or put in exceptions.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

OutcomeStatus = Literal["ok", "rejected", "failed"]


@dataclass(frozen=True)
class ProfileRecord:
    """One profile as Sendwise wants it in the ESP."""

    customer_key: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordOutcome:
    """What the ESP did with one record: ok, rejected (the ESP said no, with its reason) or failed
    (the request never succeeded: retries exhausted)."""

    customer_key: str
    email: str
    status: OutcomeStatus
    reason: str | None = None


class EspError(Exception):
    """A request to the ESP that did not succeed."""


class RetryableEspError(EspError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EspRequestRejected(EspError):
    """The ESP refused the request itself (4xx other than 429): retrying will not help."""


@dataclass(frozen=True)
class SentRequest:
    """A request as it went on the wire (for contract tests); headers minus nothing: tests only."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class RateLimiter:
    """Token bucket (`rate` per second, `burst` tokens) plus a pause until a server's Retry-After."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()
        self.blocked_until = 0.0
        self.lock = threading.Lock()

    def pause_for(self, seconds: float) -> None:
        with self.lock:
            self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait = max(self.blocked_until - now, 0.0)
                if wait == 0 and self.tokens >= 1:
                    self.tokens -= 1
                    return
                if wait == 0:
                    wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class ApiSession:
    """httpx client + rate limit + retries. `request` returns a successful response or raises EspError."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        rate_per_second: float = 10.0,
        burst: int = 10,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        on_request: Callable[[SentRequest], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self.limiter = RateLimiter(rate_per_second, burst)
        self.max_attempts = max_attempts
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.on_request = on_request
        self.request_count = 0
        self.retry_count = 0

    def close(self) -> None:
        self.client.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableEspError) and error.retry_after is not None:
            return 0.0  # the limiter already pauses every request until Retry-After has passed
        return min(self.backoff_base * 2 ** (state.attempt_number - 1), self.backoff_max)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        body = orjson.dumps(json) if json is not None else b""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableEspError),
            reraise=True,
            before_sleep=lambda _state: setattr(self, "retry_count", self.retry_count + 1),
        )
        return retrying(self._send_once, method, path, params, body, content_type)

    def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, body: bytes, content_type: str
    ) -> httpx.Response:
        self.limiter.acquire()
        headers = {"Content-Type": content_type} if body else {}
        request = self.client.build_request(
            method, path, params=params, content=body or None, headers=headers
        )
        self.request_count += 1
        if self.on_request:
            self.on_request(SentRequest(method, str(request.url), dict(request.headers), body))
        try:
            response = self.client.send(request)
        except httpx.TimeoutException as error:
            raise RetryableEspError(
                f"{method} {request.url.path}: timed out ({type(error).__name__})"
            ) from None
        except httpx.TransportError as error:
            raise RetryableEspError(f"{method} {request.url.path}: {type(error).__name__}") from None
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                self.limiter.pause_for(retry_after)
            raise RetryableEspError(f"{method} {request.url.path}: 429 rate limited", retry_after)
        if response.status_code >= 500:
            raise RetryableEspError(
                f"{method} {request.url.path}: {response.status_code} {response.text[:300]}"
            )
        if response.status_code >= 400:
            raise EspRequestRejected(
                f"{method} {request.url.path}: {response.status_code} {response.text[:500]}"
            )
        return response


class EspClient(ABC):
    """What the sync needs from an ESP. Adapters: KlaviyoClient (also the sandbox), MailchimpClient."""

    name: str
    upsert_batch_size: int
    removal_batch_size: int
    session: ApiSession

    @property
    def request_count(self) -> int:
        return self.session.request_count

    @abstractmethod
    def upsert_profiles(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        """Create or update the profiles and make them members of `list_id`; one outcome per record."""

    @abstractmethod
    def remove_from_list(self, records: Sequence[ProfileRecord], list_id: str) -> list[RecordOutcome]:
        """Take the profiles out of `list_id` (the profiles themselves stay in the ESP)."""

    def list_member_emails(self, list_id: str) -> set[str]:
        """Emails (lower case) of every member of `list_id`, read from the ESP (for reconciliation)."""
        raise NotImplementedError(f"{self.name}: reading list members is not implemented")

    def add_to_audience(self, records: Sequence[ProfileRecord], audience_id: str) -> list[RecordOutcome]:
        """Make the profiles members of a campaign audience (Klaviyo: a list; Mailchimp: a tag)."""
        return self.upsert_profiles(records, audience_id)

    def close(self) -> None:
        self.session.close()


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def failed_outcomes(records: Iterable[ProfileRecord], reason: str) -> list[RecordOutcome]:
    return [RecordOutcome(r.customer_key, r.email, "failed", reason) for r in records]
