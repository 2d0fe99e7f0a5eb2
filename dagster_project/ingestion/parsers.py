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

from dagster_project.ingestion.sources import (
    EMAIL_LIMIT,
    TEXT_LIMIT,
    Column,
    ShopTable,
    future_reason,
    length_reason,
    missing_column_reason,
    range_reason,
    text_limit,
)

WEB_EVENT_TYPES = frozenset({"page", "track", "identify"})
ESP_EVENT_TYPES = frozenset({"sent", "delivered", "open", "click", "bounce", "unsubscribe", "spam_complaint"})
RECORD_PREVIEW_CHARS = 2_000

# Documented limits (SOURCES.md): past one, the record is quarantined with the reason.
MAX_ID_CHARS = 256
"""Ids and keys (they end up in btree indexes, whose entries are limited to about 2.7 kB)."""
MAX_EMAIL_CHARS = EMAIL_LIMIT
MAX_TEXT_CHARS = TEXT_LIMIT
MAX_JSON_DEPTH = 32
"""Objects and arrays inside each other, counting the record itself."""
MAX_RECORD_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
NUL_ESCAPE = b"\\u0000"


class RecordError(ValueError):
    """A record that cannot be loaded; the message is the reason."""


@dataclass(frozen=True)
class Rejected:
    location: str
    """file:line, file#results[i] or table:pk=value."""
    record: str
    reason: str
    offset: int | None = None
    """Byte offset of the record in its file, where there is one."""


@dataclass
class Rejections:
    """Collects the quarantined records of one load."""

    items: list[Rejected] = field(default_factory=list)

    def add(self, location: str, record: str | bytes, reason: str, offset: int | None = None) -> None:
        self.items.append(Rejected(safe_text(location), preview(record), safe_text(reason), offset))

    def __len__(self) -> int:
        return len(self.items)


def preview(record: str | bytes, limit: int = RECORD_PREVIEW_CHARS) -> str:
    """The start of a record as text Postgres can always store (invalid bytes as \\xNN, NUL as \\u0000)."""
    if isinstance(record, bytes):
        record = record[: 4 * limit].decode("utf-8", errors="backslashreplace")
    return safe_text(record[: limit + 2].rstrip("\r\n")[:limit])


def safe_text(value: str) -> str:
    """`value` without what a Postgres text column rejects: NUL and lone surrogates (escaped)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode(errors="backslashreplace").decode()
    return value


# --- field readers -----------------------------------------------------------------------


def text(record: dict, key: str, required: bool = False, limit: int = MAX_TEXT_CHARS) -> str | None:
    value = record.get(key)
    if value is None or (required and value == ""):
        if required:
            raise RecordError(f"missing required key '{key}'")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in exports; the contract types them as text
    if not isinstance(value, str):
        raise RecordError(f"'{key}' should be a string, got {_brief(value)}")
    if len(value) > limit:
        raise RecordError(f"'{key}' is {len(value)} characters long, over the limit of {limit}")
    if "\x00" in value:
        raise RecordError(f"NUL character in '{key}' (Postgres text cannot hold it)")
    return value


def identifier(record: dict, key: str, required: bool = False) -> str | None:
    return text(record, key, required, MAX_ID_CHARS)


def _brief(value: Any) -> str:
    """Type and start of a value for a reason (never the repr of a container: it may be 1,000 deep)."""
    name = type(value).__name__
    if isinstance(value, (dict, list)):
        return name
    return f"{name} {repr(value[:40] if isinstance(value, str) else value)[:60]}"


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
        raise RecordError(f"'{key}' is not an ISO-8601 timestamp: {value[:60]!r}") from None
    try:
        return _utc(parsed)
    except RecordError:
        raise RecordError(f"'{key}' is out of range: {value[:60]!r} {OUT_OF_RANGE}") from None


OUT_OF_RANGE = "(in UTC it must lie in years 1 to 9999)"


def boolean(record: dict, key: str) -> bool | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise RecordError(f"'{key}' should be true/false, got {_brief(value)}")


def json_object(record: dict, key: str) -> dict | None:
    value = record.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise RecordError(f"'{key}' should be a JSON object, got {type(value).__name__}")


def one_of(record: dict, key: str, allowed: frozenset[str]) -> str:
    value = text(record, key, required=True)
    if value not in allowed:
        raise RecordError(f"'{key}' is {value[:40]!r}, expected one of {', '.join(sorted(allowed))}")
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
        identifier(record, "messageId", required=True),
        event_type,
        event,
        identifier(record, "anonymousId"),
        identifier(record, "userId"),
        timestamp(record, "timestamp", required=True),
        timestamp(record, "receivedAt"),
        _bounded(user_agent, "context.userAgent"),
        _bounded(page_path, "page path"),
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
        and _fit(row[0:1] + row[2:3] + row[4:6], MAX_ID_CHARS)
        and _fit(row[3:4], MAX_EMAIL_CHARS)
        and _fit(row[7:], MAX_TEXT_CHARS)
    ):
        return row
    return _checked_esp_event_row(record)


def _bounded(value: Any, name: str) -> str | None:
    """A text value taken from inside a JSON object (None unless a string), within the text limit."""
    if not isinstance(value, str):
        return None
    if len(value) > MAX_TEXT_CHARS:
        raise RecordError(f"{name} is {len(value)} characters long, over the limit of {MAX_TEXT_CHARS}")
    return value


def _fit(values: tuple, limit: int) -> bool:
    """True when these strings (or None) are together no longer than `limit`: a cheap sufficient test."""
    return sum(map(len, filter(None, values))) <= limit


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.year in (1, 9999):  # only there can an offset move the instant out of datetime's range
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise RecordError(OUT_OF_RANGE) from None
    return value


def _checked_esp_event_row(record: Any) -> tuple:
    record = _require_object(record)
    return (
        identifier(record, "event_id", required=True),
        one_of(record, "event_type", ESP_EVENT_TYPES),
        identifier(record, "profile_id"),
        text(record, "email", limit=MAX_EMAIL_CHARS),
        identifier(record, "campaign_id"),
        identifier(record, "message_id"),
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
        and len(row[0]) <= MAX_ID_CHARS
        and _fit(row[1:2], MAX_EMAIL_CHARS)
        and _fit(row[2:6] + row[7:8], MAX_TEXT_CHARS)
    ):
        return row
    return _checked_crm_contact_row(record)


_TEXT_OR_NONE = frozenset({str, type(None)})


def _all_text_or_none(values: tuple) -> bool:
    return _TEXT_OR_NONE.issuperset(map(type, values))


def _checked_crm_contact_row(record: Any) -> tuple:
    record = _require_object(record)
    return (
        identifier(record, "id", required=True),
        text(record, "email", limit=MAX_EMAIL_CHARS),
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
) -> Iterator[tuple[int, tuple]]:
    """(line number, typed row) of a JSONL file; bad lines go to `rejections` as `location_name:line`.

    Lines end in LF, CRLF or a bare CR; a UTF-8 byte-order mark is dropped; blank lines are skipped.
    """
    loads = orjson.loads
    line_number = 0
    offset = 0
    with path.open("rb") as chunks:
        for chunk in chunks:
            carriage_return = chunk.find(b"\r")
            pieces = (
                chunk.splitlines(keepends=True)
                if carriage_return != -1 and carriage_return < len(chunk) - 2
                else (chunk,)
            )
            for line in pieces:
                line_number += 1
                start = offset
                offset += len(line)
                if line.startswith(BOM):
                    line = line[3:]
                try:
                    if len(line) > MAX_RECORD_BYTES:
                        raise RecordError(
                            f"line is {len(line)} bytes long, over the limit of {MAX_RECORD_BYTES}"
                        )
                    record = loads(line)
                    if NUL_ESCAPE in line:
                        reject_nul(record)
                    if line.count(b"{") + line.count(b"[") > MAX_JSON_DEPTH:
                        reject_deep(record)
                    yield line_number, to_row(record)
                except orjson.JSONDecodeError as error:
                    if not line.strip():
                        continue  # a blank line is not a record
                    rejections.add(f"{location_name}:{line_number}", line, undecodable(line, error), start)
                except RecordError as error:
                    rejections.add(f"{location_name}:{line_number}", line, str(error), start)
                except (TypeError, ValueError, OverflowError, RecursionError) as error:  # a case not foreseen
                    rejections.add(f"{location_name}:{line_number}", line, unforeseen(error), start)


def unforeseen(error: Exception) -> str:
    """The reason for a record that failed in a way no check names (the load goes on without it)."""
    return f"unreadable record ({type(error).__name__}: {str(error)[:200]})"


def undecodable(data: bytes, error: Exception) -> str:
    """Why bytes did not parse as JSON: not UTF-8 text at all, or bad JSON."""
    if b"\x00" in data:
        return "NUL bytes: not UTF-8 text (UTF-16 or binary data?)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (expected UTF-8)"
    try:
        data.decode()
    except UnicodeDecodeError as decode_error:
        return f"invalid UTF-8 at byte {decode_error.start}"
    return f"bad JSON: {error}"


def reject_nul(value: Any) -> None:
    """RecordError naming the first string (or key) holding a NUL character, anywhere inside `value`."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if "\x00" in key:
                    raise RecordError(f"NUL character in a key of '{safe_text(path) or 'the record'}'")
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str) and "\x00" in item:
            raise RecordError(f"NUL character in '{safe_text(path)[:200]}' (Postgres text cannot hold it)")


def reject_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """RecordError when objects and arrays nest deeper than `limit` (the record counts as one level)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, top = stack.pop()
        if isinstance(item, dict):
            children = item.items()
        elif isinstance(item, list):
            children = ((top, child) for child in item)
        else:
            continue
        if depth > limit:
            where = f"'{safe_text(top)[:100]}'" if top else "the record"
            raise RecordError(f"{where} nests objects and arrays deeper than {limit} levels")
        stack.extend((child, depth + 1, top or key) for key, child in children)


def read_crm_page(path: Path, location_name: str, rejections: Rejections) -> tuple[list[tuple], dict]:
    """Typed contact rows of one export page, and the page header (export_id, page, total_pages).

    An unreadable page gives no rows and an empty header, its rejection naming the reason.
    """
    raw = path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        page = _require_object(orjson.loads(raw))
        results = page.get("results")
        if not isinstance(results, list):
            raise RecordError("page has no 'results' list")
    except (orjson.JSONDecodeError, RecordError) as error:
        reason = undecodable(raw, error) if isinstance(error, orjson.JSONDecodeError) else str(error)
        rejections.add(location_name, raw, f"unreadable export page: {reason}", 0)
        return [], {}
    check_nul = NUL_ESCAPE in raw
    rows = []
    for index, contact in enumerate(results):
        try:
            if check_nul:
                reject_nul(contact)
            rows.append(crm_contact_row(contact))
        except RecordError as error:
            rejections.add(f"{location_name}#results[{index}]", _dumps_or_note(contact), str(error))
        except (TypeError, ValueError, OverflowError, RecursionError) as error:  # a case not foreseen
            rejections.add(f"{location_name}#results[{index}]", _dumps_or_note(contact), unforeseen(error))
    header = {k: page.get(k) for k in ("export_id", "exported_at", "page", "total_pages")}
    return rows, header


def _dumps_or_note(value: Any) -> bytes | str:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as error:  # e.g. nested past orjson's own limit
        return f"<record not shown: {error}>"


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
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(repr(value[:60])) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(repr(value))


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(_brief(value))


def _in_range(value: datetime) -> bool:
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bigint": _to_int,
    "integer": _to_int,
    "text": _to_text,
    "boolean": _to_bool,
    "timestamptz": _to_datetime,
}


def _converter(column: Column) -> Callable[[Any], Any]:
    return _to_decimal if column.pg_type.startswith("numeric") else _CONVERTERS[column.pg_type]


def shop_row(table: ShopTable, record: dict, newest: datetime | None = None) -> tuple:
    """A shop row coerced to the contract's types (required columns must be present), checked as
    `sources.shop_row_problem` checks it on the fast path; `newest`: the latest cursor allowed."""
    values = []
    for column in table.columns:
        value = record.get(column.name)
        if value is None:
            if column.required:
                raise RecordError(missing_column_reason(column.name))
            values.append(None)
            continue
        try:
            value = _converter(column)(value)
        except ValueError as error:
            raise RecordError(f"'{column.name}' should be {column.pg_type}, got {error}") from None
        if column.pg_type == "text":
            if len(value) > text_limit(column.name):
                raise RecordError(length_reason(column.name))
            if "\x00" in value:
                raise RecordError(f"NUL character in '{column.name}' (Postgres text cannot hold it)")
        elif column.pg_type == "timestamptz":
            if not _in_range(value):
                raise RecordError(range_reason(column.name))
            if newest is not None and column.name == table.cursor_column and value > newest:
                raise RecordError(future_reason(table))
        values.append(value)
    return tuple(values)
