"""ESP adapters against hostile or broken ESP answers: pagination that leaves the API origin or loops,
answers of an unexpected shape. Served by tiny local HTTP servers on free ports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from activation_world import list_emails, make_client, sandbox, world  # noqa: F401

from dagster_project.activation.client import (
    ApiSession,
    EspError,
    ProfileRecord,
    UnexpectedResponse,
    UnsafePagination,
)
from dagster_project.activation.klaviyo import KlaviyoClient, klaviyo_headers
from dagster_project.activation.sync import run_sync

DEST, LIST = "sandbox:sendwise", "sendwise"

Answer = tuple[int, bytes]


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[str, str, Recorder], Answer]):
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.answer = answer
        self.hits: list[tuple[str, str, str]] = []  # method, path, authorization header

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hits.append((self.command, self.path, self.headers.get("Authorization", "")))
        status, payload = self.server.answer(self.command, self.path, self.server)
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _handle


@contextmanager
def serving(answer: Callable[[str, str, Recorder], Answer]) -> Iterator[Recorder]:
    server = Recorder(answer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def klaviyo(url: str, max_pages: int = 50) -> KlaviyoClient:
    session = ApiSession(
        url, klaviyo_headers("pk_secret"), rate_per_second=1000, burst=1000, max_attempts=2, backoff_base=0.01
    )
    return KlaviyoClient(session, poll_interval=0.001, max_pages=max_pages)


def page(emails: list[str], next_url: str | None) -> bytes:
    data = [{"type": "profile", "id": f"p{i}", "attributes": {"email": e}} for i, e in enumerate(emails)]
    return orjson.dumps({"data": data, "links": {"next": next_url}})


def test_links_next_to_another_origin_is_never_followed_and_the_key_stays_home():
    with serving(lambda *_: (200, page(["x@example.com"], None))) as foreign:
        # same host, another port: another origin too
        with serving(lambda *_: (200, page(["a@example.com"], f"{foreign.url}/api/lists/L/profiles"))) as esp:
            client = klaviyo(esp.url)
            with pytest.raises(UnsafePagination, match="outside the API origin"):
                client.list_member_emails("L")
            client.close()
        assert foreign.hits == []
        assert len(esp.hits) == 1 and esp.hits[0][2] == "Klaviyo-API-Key pk_secret"


def test_a_self_pointing_next_link_stops_at_once():
    def answer(method: str, path: str, server: Recorder) -> Answer:
        return 200, page([f"p{len(server.hits)}@example.com"], f"{server.url}{path}")

    with serving(answer) as esp:
        client = klaviyo(esp.url)
        with pytest.raises(UnsafePagination, match="repeats a page already read"):
            client.list_member_emails("L")
        client.close()
    # the first page, then its self link once (httpx spells the first URL's query its own way)
    assert len(esp.hits) <= 2


def test_a_listing_that_never_ends_stops_at_the_page_cap():
    def answer(method: str, path: str, server: Recorder) -> Answer:
        n = len(server.hits)
        return 200, page([f"p{n}@example.com"], f"{server.url}/api/lists/L/profiles?page%5Bcursor%5D={n}")

    with serving(answer) as esp:
        client = klaviyo(esp.url, max_pages=7)
        with pytest.raises(UnsafePagination, match="more than 7 pages"):
            client.list_member_emails("L")
        client.close()
    assert len(esp.hits) == 7


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",  # not JSON
        b"[1, 2]",  # JSON, not an object
        b'{"data": {}}',  # no id
        b'{"data": "nope"}',  # wrong type
    ],
)
def test_an_unreadable_answer_is_an_esp_error_for_that_batch(body: bytes):
    with serving(lambda *_: (202, body)) as esp:
        client = klaviyo(esp.url)
        with pytest.raises(UnexpectedResponse, match="profile-bulk-import-jobs"):
            client.upsert_profiles([ProfileRecord("k1", "one@example.com")], "L")
        client.close()
    assert issubclass(UnexpectedResponse, EspError)


def test_missing_optional_fields_in_listings_are_read_with_defaults_or_fail_as_esp_errors():
    documents = {
        "/api/metrics": b'{"data": [{"id": "m1"}], "links": {}}',  # a metric without attributes
        "/api/lists/L/profiles": b'{"data": [{"id": "p1"}, {"id": "p2", "attributes": null}]}',
    }

    def answer(method: str, path: str, server: Recorder) -> Answer:
        return 200, documents[path.split("?")[0]]

    with serving(answer) as esp:
        client = klaviyo(esp.url)
        assert client.list_member_emails("L") == set()  # no emails: nothing, no KeyError
        with pytest.raises(UnexpectedResponse, match="GET /api/metrics"):
            client.metrics()
        client.close()


class OddAnswers(httpx.HTTPTransport):
    """A real transport whose answers to the first `count` import-job creations are not JSON."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path == "/api/profile-bulk-import-jobs" and self.count:
            self.count -= 1
            response.read()
            return httpx.Response(202, content=b"<html>upstream hiccup</html>", request=request)
        return response


def test_one_odd_answer_fails_its_batch_not_the_sync(world, sandbox):  # noqa: F811
    session = ApiSession(
        sandbox.url, klaviyo_headers("k"), rate_per_second=1000, burst=1000, transport=OddAnswers(1)
    )
    client = KlaviyoClient(session, upsert_batch_size=50, poll_interval=0.001)
    result = run_sync(world.conn, client, DEST, LIST)
    expected = world.contactable_emails()
    assert (result.status, result.failed, result.added) == ("partial", 50, len(expected) - 50)
    reasons = world.conn.execute(
        "select distinct status, reason from activation.esp_sync_outcomes where run_id = %s", (result.run_id,)
    ).fetchall()
    assert reasons == [
        (
            "failed",
            "POST /api/profile-bulk-import-jobs: answer 202 is not JSON (no content-type, 28 bytes)",
        )
    ]
    rerun = run_sync(world.conn, make_client(sandbox), DEST, LIST)
    assert rerun.added == 50 and rerun.failed == 0
    assert set(list_emails(sandbox, LIST)) == expected
