"""The ESP client interface, per-record outcomes, and the HTTP session every adapter shares.

The session owns the network manners: a token-bucket rate limiter that also honours `Retry-After`,
and retries with exponential backoff for 429, 5xx and timeouts (tenacity): failures count toward a
number of tries, except 429s that said when to come back, which are waited out within a time budget.
Requests go only to the base URL's origin. Secrets live in headers only and are never logged or put
in exceptions.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type

if TYPE_CHECKING:
    from dagster_project.activation.outbound import FieldLimits

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


class UnexpectedResponse(EspError):
    """The ESP answered something the adapter cannot read (not JSON, a field missing or of another type)."""


class UnsafePagination(EspError):
    """A pagination link that leaves the API origin, points back to a page already read, or pages past the
    cap: the listing stops there (the API key is never sent anywhere but the configured origin)."""


# What reading a response can raise when its shape is not the expected one.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a response of an unexpected shape into an UnexpectedResponse naming `what` was read, so
    that one odd answer fails its batch (an EspError), not the whole sync."""
    try:
        yield
    except EspError:
        raise
    except SHAPE_ERRORS as error:
        raise UnexpectedResponse(f"{what}: unexpected response ({type(error).__name__}: {error})") from None


def response_json(response: httpx.Response) -> Any:
    """The response body as JSON, or UnexpectedResponse naming the request."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        request = response.request
        raise UnexpectedResponse(
            f"{request.method} {request.url.path}: answer {response.status_code} is not JSON "
            f"({response.headers.get('content-type', 'no content-type')}, {len(response.content)} bytes)"
        ) from None


def url_origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, parsed.port or default


class PageGuard:
    """Follows one listing's pages: each next link must stay within `origin`, never repeat, and the
    listing stops with UnsafePagination after `max_pages` pages."""

    def __init__(self, what: str, origin: tuple[str, str, int | None], max_pages: int):
        self.what, self.origin, self.max_pages = what, origin, max_pages
        self.seen: set[str] = set()
        self.pages = 0

    def check(self, url: str) -> str:
        """Call with each page's URL before fetching it; returns the URL to fetch."""
        page_key = str(httpx.URL(url))
        if url_origin(page_key) != self.origin:
            scheme, host, port = url_origin(page_key)
            raise UnsafePagination(
                f"{self.what}: next page link points to {scheme}://{host}:{port}, outside the API origin "
                f"{self.origin[0]}://{self.origin[1]}:{self.origin[2]}; not followed"
            )
        if page_key in self.seen:
            raise UnsafePagination(f"{self.what}: next page link repeats a page already read (a loop)")
        self.pages += 1
        if self.pages > self.max_pages:
            raise UnsafePagination(f"{self.what}: more than {self.max_pages} pages; stopped")
        self.seen.add(page_key)
        return page_key


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


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now(), 0.0)
    except (TypeError, ValueError, IndexError):
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
        retry_after_budget: float = 300.0,
        on_request: Callable[[SentRequest], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self.origin = url_origin(base_url)
        self.limiter = RateLimiter(rate_per_second, burst)
        self.max_attempts = max_attempts
        self.retry_after_budget = retry_after_budget
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

    def _stopper(self) -> Callable[[RetryCallState], bool]:
        """Failures count toward `max_attempts`, except 429s that said when to come back (Retry-After):
        those are waited out as long as the request stays within `retry_after_budget` seconds."""
        counted = 0

        def stop(state: RetryCallState) -> bool:
            nonlocal counted
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RetryableEspError) and error.retry_after is not None:
                elapsed = state.seconds_since_start or 0.0
                return elapsed + error.retry_after > self.retry_after_budget
            counted += 1
            return counted >= self.max_attempts

        return stop

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
            stop=self._stopper(),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableEspError),
            reraise=True,
            before_sleep=lambda _state: setattr(self, "retry_count", self.retry_count + 1),
        )
        return retrying(self._send_once, method, path, params, body, content_type)

    def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """`request`, and its answer as a JSON object (else UnexpectedResponse)."""
        document = response_json(self.request(method, path, **kwargs))
        if not isinstance(document, dict):
            kind = type(document).__name__
            raise UnexpectedResponse(f"{method} {path}: unexpected response (a JSON {kind}, not an object)")
        return document

    def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, body: bytes, content_type: str
    ) -> httpx.Response:
        self.limiter.acquire()
        headers = {"Content-Type": content_type} if body else {}
        request = self.client.build_request(
            method, path, params=params, content=body or None, headers=headers
        )
        if url_origin(request.url) != self.origin:  # the key goes to the configured API only
            raise UnsafePagination(f"{method} {request.url.host}: outside the API origin; not sent")
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
    limits: FieldLimits
    """What the ESP accepts per field; adapters clean and bound every record with it before sending."""
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

    def delete_profiles(self, emails: Sequence[str]) -> list[RecordOutcome]:
        """Erase the people with these emails from the ESP (GDPR art. 17: the ESP's own deletion, not
        an unsubscribe); one outcome per email (customer_key empty), `ok` also when the ESP did not
        know the person. Adapters that cannot delete answer `failed` for every email."""
        return [
            RecordOutcome("", email, "failed", f"{self.name}: deletion is not implemented")
            for email in emails
        ]

    def close(self) -> None:
        self.session.close()


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def failed_outcomes(records: Iterable[ProfileRecord], reason: str) -> list[RecordOutcome]:
    return [RecordOutcome(r.customer_key, r.email, "failed", reason) for r in records]
