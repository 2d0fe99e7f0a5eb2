"""Named hostile records, one or more per item of issue 11, in the source formats they arrive in.

Each case is the bytes of one JSONL line (web or ESP events), with the start of the reason it must be
quarantined for; `None` means the record is valid and must load. The tests feed them between valid
lines, so the rest of the file must load around them.

The items whose case is not one line, and the tests that hold them:
 4 a failed day stops the others: test_ingestion_isolation::test_a_failed_day_does_not_stop_the_others...
 5 'infinity' / year 10000 in shop rows, 6 far-future shop updated_at as the mark:
   test_ingestion_hostile_shop (both shop paths); GX over hostile tables: test_quality_hostile_input
 7 staging dedupe ties: tests/dbt/test_dbt_quarantine.py (TIED_COPIES)
 8 BOM, bare CR, BOM-only file, CRM page with a BOM: test_ingestion_hostile::test_byte_order_mark...,
   ::test_crm_page_with_a_byte_order_mark_loads; the CRM mark passing an unread page:
   test_ingestion_isolation::test_an_unreadable_crm_page_fails_alone_and_its_export_is_retried
 3 a 1 MB CRM contact_id (and other hostile contacts): test_ingestion_hostile::test_hostile_crm_contacts...
10 one negative order_total blocks the build: test_quality_hostile_input
11 a failed load logs rolled-back counts, 12 the failure names nothing:
   test_ingestion_isolation::test_a_failed_load_logs_no_rolled_back_counts
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ingestion_helpers import esp_event, web_event

DAY = "2025-01-02"
MEGABYTE_ID = "x" * 1_000_000


def _line(record: dict) -> bytes:
    return json.dumps(record).encode()


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@dataclass(frozen=True)
class LineCase:
    name: str
    issue_item: int
    stream: str
    """web_events or esp_events"""
    line: bytes
    reason: str | None
    """How the quarantine reason starts; None: the line is valid and loads."""


LINE_CASES = (
    LineCase("nul_escape_in_id", 1, "esp_events", _line(esp_event("e-\u0000", DAY)), "NUL character"),
    LineCase(
        "nul_escape_in_nested_key",
        1,
        "web_events",
        _line(web_event("w-nul-key", DAY, properties={"a": [{"k\u0000": 1}]})),
        "NUL character",
    ),
    LineCase(
        "escaped_backslash_u0000_is_text",
        1,
        "web_events",
        _line(web_event("w-backslash", DAY, properties={"note": "\\u0000"})),
        None,
    ),
    LineCase("raw_nul_byte", 1, "esp_events", b'{"event_id": "e-raw\x00nul"}', "NUL bytes"),
    LineCase(
        "utf16_line", 1, "esp_events", _line(esp_event("e-utf16", DAY)).decode().encode("utf-16"), "NUL bytes"
    ),
    LineCase(
        "invalid_utf8", 1, "web_events", b'{"messageId": "w-\xff\xfe-bad", "type": "page"}', "invalid UTF-8"
    ),
    LineCase("binary_garbage", 1, "esp_events", b"\x01\x02garbage\x80\x81\xfe\xff", "invalid UTF-8"),
    LineCase(
        "deep_properties_500",
        2,
        "web_events",
        _line(web_event("w-deep", DAY, properties=_nested(500))),
        "'properties' nests objects and arrays deeper than 32 levels",
    ),
    LineCase(
        "deep_traits_40",
        2,
        "web_events",
        _line(web_event("w-deep-traits", DAY, traits=_nested(40))),
        "'traits' nests objects and arrays deeper than 32 levels",
    ),
    LineCase(
        "nesting_at_the_limit_loads",
        2,
        "web_events",
        _line(web_event("w-deep-ok", DAY, properties=_nested(30))),
        None,
    ),
    LineCase(
        "megabyte_esp_event_id",
        3,
        "esp_events",
        _line(esp_event(MEGABYTE_ID, DAY)),
        "'event_id' is 1000000 characters long, over the limit of 256",
    ),
    LineCase(
        "long_web_anonymous_id",
        3,
        "web_events",
        _line(web_event("w-long-anon", DAY, anonymousId="a" * 300)),
        "'anonymousId' is 300 characters long, over the limit of 256",
    ),
    LineCase(
        "long_user_agent",
        3,
        "esp_events",
        _line(esp_event("e-long-ua", DAY, user_agent="u" * 10_000)),
        "'user_agent' is 10000 characters long, over the limit of 8192",
    ),
    LineCase(
        "year_10000_after_utc",
        5,
        "esp_events",
        _line(esp_event("e-y10k", DAY, timestamp="9999-12-31T23:00:00-05:00")),
        "'timestamp' is out of range",
    ),
    LineCase(
        "year_0_after_utc",
        5,
        "web_events",
        _line(web_event("w-y0", DAY, receivedAt="0001-01-01T01:00:00+05:00")),
        "'receivedAt' is out of range",
    ),
    LineCase(
        "infinity_timestamp",
        5,
        "esp_events",
        _line(esp_event("e-inf", DAY, timestamp="infinity")),
        "'timestamp' is not an ISO-8601 timestamp",
    ),
    LineCase(
        "year_9999_in_utc_loads",
        5,
        "esp_events",
        _line(esp_event("e-y9999", DAY, timestamp="9999-12-31T23:00:00+00:00")),
        None,
    ),
    LineCase(
        "sql_in_a_string_is_text",
        0,
        "web_events",
        _line(web_event("w-sql'); drop table raw.web_events; --", DAY)),
        None,
    ),
)
CASES_BY_NAME = {case.name: case for case in LINE_CASES}
