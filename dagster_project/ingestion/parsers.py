"""Turning source records into typed rows, or into quarantine entries naming the record and the reason.

Pure functions (file reading aside): every row builder raises `RecordError` with a readable reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from dagster_project.ingestion.sources import Column, ShopTable

WEB_EVENT_TYPES = frozenset({"page", "track", "identify"})
ESP_EVENT_TYPES = frozenset({"sent", "delivered", "open", "click", "bounce", "unsubscribe", "spam_complaint"})
RECORD_PREVIEW_CHARS = 2_000


class RecordError(ValueError):
    """A record that cannot be loaded; the message is the reason."""


@dataclass(frozen=True)
class Rejected:
    location: str
    """file:line, file#results[i] or table:pk=value."""
    record: str
    reason: str


@dataclass
class Rejections:
    """Collects the quarantined records of one load."""

    items: list[Rejected] = field(default_factory=list)

    def add(self, location: str, record: str | bytes, reason: str) -> None:
        if isinstance(record, bytes):
            record = record.decode("utf-8", errors="replace")
        self.items.append(Rejected(location, record.rstrip("\n")[:RECORD_PREVIEW_CHARS], reason))

    def __len__(self) -> int:
        return len(self.items)


# --- field readers -----------------------------------------------------------------------


def text(record: dict, key: str, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None or (required and value == ""):
        if required:
            raise RecordError(f"missing required key '{key}'")
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric ids are common in exports; the contract types them as text
    raise RecordError(f"'{key}' should be a string, got {type(value).__name__} {value!r:.40}")


def timestamp(record: dict, key: str, required: bool = False) -> datetime | None:
    value = record.get(key)
    if value is None:
        if required:
            raise RecordError(f"missing required key '{key}'")
        return None
    return parse_timestamp(value, key)


def parse_timestamp(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise RecordError(f"'{key}' should be an ISO-8601 timestamp string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"'{key}' is not an ISO-8601 timestamp: {value!r:.60}") from None
    return _utc(parsed)


def boolean(record: dict, key: str) -> bool | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise RecordError(f"'{key}' should be true/false, got {type(value).__name__} {value!r:.40}")


def json_object(record: dict, key: str) -> dict | None:
    value = record.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise RecordError(f"'{key}' should be a JSON object, got {type(value).__name__}")


def one_of(record: dict, key: str, allowed: frozenset[str]) -> str:
    value = text(record, key, required=True)
    if value not in allowed:
        raise RecordError(f"'{key}' is {value!r:.40}, expected one of {', '.join(sorted(allowed))}")
    return value  # type: ignore[return-value]


def _require_object(record: Any) -> dict:
    if not isinstance(record, dict):
        raise RecordError(f"record is a JSON {type(record).__name__}, expected an object")
    return record


# --- row builders (column order = the raw table's data columns) -----------------------------

WEB_EVENT_COLUMNS = (
    "message_id", "type", "event", "anonymous_id", "user_id", "event_timestamp", "received_at",
    "user_agent", "page_path", "properties", "traits", "context",
)  # fmt: skip


def web_event_row(record: Any) -> tuple:
    record = _require_object(record)
    event_type = one_of(record, "type", WEB_EVENT_TYPES)
    event = text(record, "event", required=event_type == "track")
    properties = json_object(record, "properties")
    context = json_object(record, "context")
    page = context.get("page") if context else None
    page_path = page.get("path") if isinstance(page, dict) else None
    if page_path is None and properties:
        page_path = properties.get("path")
    user_agent = context.get("userAgent") if context else None
    return (
        text(record, "messageId", required=True),
        event_type,
        event,
        text(record, "anonymousId"),
        text(record, "userId"),
        timestamp(record, "timestamp", required=True),
        timestamp(record, "receivedAt"),
        user_agent if isinstance(user_agent, str) else None,
        page_path if isinstance(page_path, str) else None,
        properties,
        json_object(record, "traits"),
        context,
    )


ESP_EVENT_COLUMNS = (
    "event_id", "event_type", "profile_id", "email", "campaign_id", "message_id", "event_timestamp",
    "user_agent", "ip", "url", "bounce_type",
)  # fmt: skip


def esp_event_row(record: Any) -> tuple:
    """The common case of well-formed events without per-field calls (ESP rows are narrow and many)."""
    try:
        get = record.get
        row = (
            get("event_id"), get("event_type"), get("profile_id"), get("email"), get("campaign_id"),
            get("message_id"), _utc(datetime.fromisoformat(get("timestamp"))), get("user_agent"), get("ip"),
            get("url"), get("bounce_type"),
        )  # fmt: skip
    except (AttributeError, TypeError, ValueError):
        return _checked_esp_event_row(record)
    if (
        row[0].__class__ is str
        and row[0]
        and row[1] in ESP_EVENT_TYPES
        and _all_text_or_none(row[2:6] + row[7:])
    ):
        return row
    return _checked_esp_event_row(record)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _checked_esp_event_row(record: Any) -> tuple:
    record = _require_object(record)
    return (
        text(record, "event_id", required=True),
        one_of(record, "event_type", ESP_EVENT_TYPES),
        text(record, "profile_id"),
        text(record, "email"),
        text(record, "campaign_id"),
        text(record, "message_id"),
        timestamp(record, "timestamp", required=True),
        text(record, "user_agent"),
        text(record, "ip"),
        text(record, "url"),
        text(record, "bounce_type"),
    )


CRM_CONTACT_COLUMNS = (
    "contact_id", "email", "first_name", "last_name", "phone", "lifecycle_stage", "email_opt_in",
    "timezone", "created_at", "updated_at",
)  # fmt: skip


def crm_contact_row(record: Any) -> tuple:
    """The common case of well-formed contacts without per-field calls; anything else is checked."""
    try:
        get = record.get
        created_at = get("created_at")
        row = (
            get("id"), get("email"), get("first_name"), get("last_name"), get("phone"),
            get("lifecycle_stage"), get("email_opt_in"), get("timezone"),
            None if created_at is None else _utc(datetime.fromisoformat(created_at)),
            _utc(datetime.fromisoformat(get("updated_at"))),
        )  # fmt: skip
    except (AttributeError, TypeError, ValueError):
        return _checked_crm_contact_row(record)
    if (
        row[0].__class__ is str
        and row[0]
        and _all_text_or_none(row[1:6] + row[7:8])
        and (row[6] is None or row[6].__class__ is bool)
    ):
        return row
    return _checked_crm_contact_row(record)


_TEXT_OR_NONE = frozenset({str, type(None)})


def _all_text_or_none(values: tuple) -> bool:
    return _TEXT_OR_NONE.issuperset(map(type, values))


def _checked_crm_contact_row(record: Any) -> tuple:
    record = _require_object(record)
    return (
        text(record, "id", required=True),
        text(record, "email"),
        text(record, "first_name"),
        text(record, "last_name"),
        text(record, "phone"),
        text(record, "lifecycle_stage"),
        boolean(record, "email_opt_in"),
        text(record, "timezone"),
        timestamp(record, "created_at"),
        timestamp(record, "updated_at", required=True),
    )


# --- readers -------------------------------------------------------------------------------


def read_jsonl(
    path: Path, location_name: str, to_row: Callable[[Any], tuple], rejections: Rejections
) -> Iterator[tuple]:
    """Typed rows of a JSONL file; bad lines go to `rejections` as `location_name:line`."""
    loads = orjson.loads
    with path.open("rb") as lines:
        for line_number, line in enumerate(lines, 1):
            try:
                yield to_row(loads(line))
            except orjson.JSONDecodeError as error:
                if not line.strip():
                    continue  # a blank line is not a record
                rejections.add(f"{location_name}:{line_number}", line, f"bad JSON: {error}")
            except RecordError as error:
                rejections.add(f"{location_name}:{line_number}", line, str(error))


def read_crm_page(path: Path, location_name: str, rejections: Rejections) -> tuple[list[tuple], dict]:
    """Typed contact rows of one export page, and the page header (export_id, page, total_pages)."""
    raw = path.read_bytes()
    try:
        page = _require_object(orjson.loads(raw))
        results = page.get("results")
        if not isinstance(results, list):
            raise RecordError("page has no 'results' list")
    except (orjson.JSONDecodeError, RecordError) as error:
        reason = f"bad JSON: {error}" if isinstance(error, orjson.JSONDecodeError) else str(error)
        rejections.add(location_name, raw, f"unreadable export page: {reason}")
        return [], {}
    rows = []
    for index, contact in enumerate(results):
        try:
            rows.append(crm_contact_row(contact))
        except RecordError as error:
            rejections.add(f"{location_name}#results[{index}]", orjson.dumps(contact), str(error))
    header = {k: page.get(k) for k in ("export_id", "exported_at", "page", "total_pages")}
    return rows, header


# --- shop rows read through SQLAlchemy (the generic path) -----------------------------------


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(repr(value))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # MySQL tinyint(1)
        return bool(value)
    raise ValueError(repr(value))


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, (float, str)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(repr(value)) from None
    raise ValueError(repr(value))


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)  # MySQL DATETIME: UTC
    if isinstance(value, str):
        return parse_timestamp(value, "value")
    raise ValueError(repr(value))


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{type(value).__name__} {value!r:.40}")


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bigint": _to_int,
    "integer": _to_int,
    "text": _to_text,
    "boolean": _to_bool,
    "timestamptz": _to_datetime,
}


def _converter(column: Column) -> Callable[[Any], Any]:
    return _to_decimal if column.pg_type.startswith("numeric") else _CONVERTERS[column.pg_type]


def missing_column_reason(column: str) -> str:
    return f"missing required column '{column}'"


def shop_row(table: ShopTable, record: dict) -> tuple:
    """A shop row coerced to the contract's types (required columns must be present)."""
    values = []
    for column in table.columns:
        value = record.get(column.name)
        if value is None:
            if column.required:
                raise RecordError(missing_column_reason(column.name))
            values.append(None)
            continue
        try:
            values.append(_converter(column)(value))
        except (ValueError, RecordError) as error:
            raise RecordError(f"'{column.name}' should be {column.pg_type}, got {error}") from None
    return tuple(values)
