"""Masking PII for anything people see without PII access: Dagster metadata, logs, reports.

The Dagster UI has no authentication, so previews and samples show `a***@mail.org`, `***99` and
initials instead of emails, phones and names. One helper for every place that shows records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Anything@anything between separators (ASCII-only classes let `ü...` through); `/` ends it, so a
# socket URL's `postgres@/db` is no address.
EMAIL = re.compile(r"([^\s@|'\"<>()\[\],;:/])[^\s@|'\"<>()\[\],;:/]*@([^\s@|'\"<>()\[\],;:/]+)")
# "key": "value" pairs of personal fields inside JSON text (records kept in quarantine, traits, context).
JSON_FIELD = re.compile(
    r'("(?:phone|phone_number|first_name|last_name|firstName|lastName|name|ip|address)"\s*:\s*)"[^"]*"',
    re.IGNORECASE,
)
NAME_COLUMNS = {"first_name", "last_name", "firstname", "lastname", "full_name"}
PHONE_COLUMNS = {"phone", "phone_number", "mobile"}
IP_COLUMNS = {"ip", "ip_address"}
URL_PASSWORD = re.compile(r"(://[^:/@?#\s]*:)[^@\s]*@")  # user:password@ of a URL
QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)  # libpq's ?password=


def mask_email(email: str) -> str:
    return EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", email)


def mask_url(url: str) -> str:
    """A URL (or text holding URLs) with every password replaced by `***`: for prints, logs, errors."""
    return QUERY_PASSWORD.sub(r"\1***", URL_PASSWORD.sub(r"\1***@", url))


def mask_text(text: str) -> str:
    """Emails anywhere and personal fields of JSON inside free text."""
    return JSON_FIELD.sub(r'\1"***"', mask_email(text))


def mask_value(column: str, value: Any) -> Any:
    """A value as it may be shown, judged by its column's name and its content."""
    if value is None:
        return None
    name = column.lower()
    if name in NAME_COLUMNS:
        text = str(value).strip()
        return f"{text[:1]}." if text else text
    if name in PHONE_COLUMNS or name.endswith("_phone"):
        digits = re.sub(r"\D", "", str(value))
        return f"***{digits[-2:]}" if digits else "***"
    if name in IP_COLUMNS or name.endswith("_ip"):
        return "***"
    if isinstance(value, Mapping | list):
        return mask_text(json.dumps(value, default=str))
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {column: mask_value(column, value) for column, value in record.items()}


def mask_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [mask_record(record) for record in records]


def mask_sample(rows: Iterable[Mapping[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
    """Rows of a data-quality sample; a bare `value` is judged as the checked `column`."""
    return [{k: mask_value(column if k == "value" and column else k, v) for k, v in r.items()} for r in rows]


def mask_frame(frame):
    """A pandas DataFrame with every column masked (for markdown previews)."""
    masked = frame.copy()
    for column in masked.columns:
        if masked[column].dtype == object or str(column).lower() in NAME_COLUMNS | PHONE_COLUMNS | IP_COLUMNS:
            masked[column] = [mask_value(str(column), v) for v in masked[column]]
    return masked
