"""Row builders: the fast path for well-formed records agrees with the checked one; errors name the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ingestion_helpers import contact, esp_event, web_event

from dagster_project.ingestion import parsers


def test_well_formed_records_become_typed_rows() -> None:
    esp = parsers.esp_event_row(esp_event("e-1", "2025-01-02", timestamp="2025-01-02T08:30:00Z"))
    assert esp[:2] == ("e-1", "open")
    assert esp[6] == datetime(2025, 1, 2, 8, 30, tzinfo=UTC)
    crm = parsers.crm_contact_row(contact(7, updated_at="2025-01-03T10:00:00"))
    assert crm[0] == "crm-0000007" and crm[6] is True
    assert crm[9] == datetime(2025, 1, 3, 10, tzinfo=UTC)  # no offset: taken as UTC
    web = parsers.web_event_row(web_event("w-1", "2025-01-02", type="track", event="Order Completed"))
    assert web[:3] == ("w-1", "track", "Order Completed")
    assert (web[7], web[8]) == ("Mozilla/5.0", "/home")


def test_numeric_ids_are_accepted_as_text() -> None:
    assert parsers.esp_event_row(esp_event("e-1", "2025-01-02", profile_id=123))[2] == "123"
    assert parsers.crm_contact_row(contact(1, phone=4930123))[4] == "4930123"


@pytest.mark.parametrize(
    ("builder", "record", "reason"),
    [
        (parsers.esp_event_row, esp_event("e", "2025-01-02", timestamp="02/01/2025"),
         "'timestamp' is not an ISO-8601 timestamp: '02/01/2025'"),
        (parsers.esp_event_row, esp_event("e", "2025-01-02", email=["a@b.c"]),
         "'email' should be a string, got list"),
        (parsers.esp_event_row, esp_event("", "2025-01-02"), "missing required key 'event_id'"),
        (parsers.esp_event_row, ["not", "an", "object"], "record is a JSON list, expected an object"),
        (parsers.crm_contact_row, contact(1, updated_at=None), "missing required key 'updated_at'"),
        (parsers.crm_contact_row, contact(1, email_opt_in=1),
         "'email_opt_in' should be true/false, got int 1"),
        (parsers.web_event_row, web_event("w", "2025-01-02", type="track"), "missing required key 'event'"),
        (parsers.web_event_row, web_event("w", "2025-01-02", type="screen"),
         "'type' is 'screen', expected one of identify, page, track"),
    ],
)  # fmt: skip
def test_malformed_records_raise_with_the_reason(builder, record, reason: str) -> None:
    with pytest.raises(parsers.RecordError) as raised:
        builder(record)
    assert str(raised.value).startswith(reason)


def test_sources_md_lists_every_limit() -> None:
    from pathlib import Path

    from dagster_project.ingestion.sources import FUTURE_TOLERANCE

    text = (Path(parsers.__file__).parent / "SOURCES.md").read_text()
    limits = [
        f"at most {parsers.MAX_ID_CHARS} characters",
        f"at most {parsers.MAX_EMAIL_CHARS} characters",
        f"at most {parsers.MAX_TEXT_CHARS:,}",
        f"at most {parsers.MAX_JSON_DEPTH} deep",
        f"at most {parsers.MAX_RECORD_BYTES >> 20} MiB",
        f"at most {int(FUTURE_TOLERANCE.total_seconds() // 3600)} hours past now",
        f"first {parsers.RECORD_PREVIEW_CHARS:,} characters",
    ]
    assert [limit for limit in limits if limit not in text] == []


def test_a_record_failing_in_an_unforeseen_way_is_quarantined_not_raised(tmp_path) -> None:
    path = tmp_path / "day.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')

    def to_row(record: dict) -> tuple:
        if record["a"] == 1:
            raise OverflowError("date value out of range")
        return (record["a"],)

    rejections = parsers.Rejections()
    assert list(parsers.read_jsonl(path, "day.jsonl", to_row, rejections)) == [(2, (2,))]
    assert [(r.location, r.reason, r.offset) for r in rejections.items] == [
        ("day.jsonl:1", "unreadable record (OverflowError: date value out of range)", 0)
    ]
