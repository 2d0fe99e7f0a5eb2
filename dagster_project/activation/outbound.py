"""Outbound limits: what Sendwise sends to an ESP is bounded and free of control characters.

Text from the warehouse can hold anything a source held (a 1,000,000-character first name, ANSI escapes,
RTL overrides, tabs and newlines). Before a profile leaves, `sanitise_record` cleans every text field
with `clean_text` (one function for all of them) and bounds it by the ESP's limit; a profile that cannot
be made valid without changing who it is (an invalid or oversized email, an oversized customer key) is
not sent and comes back with the reason, which the sync logs in `activation.esp_sync_outcomes`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from dagster_project.activation.client import ProfileRecord, RecordOutcome

# ANSI/VT escape sequences (CSI ... final byte, OSC ... BEL/ST, and two-character ESC sequences),
# removed whole so that no "[31m" residue is left once ESC itself is gone.
ANSI_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC
    r"|\x1b[@-Z\\-_]"  # other Fe sequences
)
# Unicode bidirectional controls (embeddings, overrides, isolates, marks), separators that end lines,
# zero-width characters and the BOM: invisible, and able to reorder or hide what a reader sees.
INVISIBLE = (
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)
WHITESPACE_LIKE = "\t\n\v\f\r\x85\u2028\u2029"
SPACE_LIKE = re.compile(f"[{WHITESPACE_LIKE}]")
MANY_SPACES = re.compile(" {2,}")
SIMPLE_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


# What `clean_text` never lets through: C0/C1 controls and DEL (Unicode category Cc is exactly
# U+0000-001F and U+007F-009F), lone surrogates (Cs), the invisible characters and line separators. One
# regex: testing each character's category in Python took 14 of the ESP sync's 34 s at 100k customers.
FORBIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff{INVISIBLE}{WHITESPACE_LIKE}]")


def clean_text(value: str, max_length: int) -> str:
    """`value` as one line of visible text of at most `max_length` characters: ANSI escapes removed,
    tabs/newlines/line separators turned into spaces, other controls, bidi and zero-width characters
    and lone surrogates dropped, runs of spaces collapsed, ends trimmed, NFC-normalised, then cut."""
    if len(value) > 4 * max_length + 64:
        value = value[: 4 * max_length + 64]  # bound the work first: what follows only shortens
    text = FORBIDDEN.sub("", SPACE_LIKE.sub(" ", ANSI_ESCAPE.sub("", value)))
    text = unicodedata.normalize("NFC", text)
    text = MANY_SPACES.sub(" ", text).strip()
    return text[:max_length].rstrip() if len(text) > max_length else text


@dataclass(frozen=True)
class FieldLimits:
    """Per-ESP bounds, in characters unless named bytes."""

    esp: str
    name: int  # first_name, last_name
    text_property: int  # each string property value
    property_name: int
    list_items: int  # items of a list-valued property
    profile_bytes: int | None = None  # the serialised profile
    tag: int | None = None  # tag names (Mailchimp)
    email: int = 254  # RFC 5321: a forward path of at most 256 octets, minus the brackets
    email_local_part: int = 64
    customer_key: int = 255


# Klaviyo publishes 100 KB per profile in a bulk import job (esp-specs README); it publishes no per-field
# bounds, so names and property values get Sendwise's own, generous ones.
KLAVIYO_LIMITS = FieldLimits(
    "klaviyo", name=255, text_property=1_000, property_name=100, list_items=100, profile_bytes=100_000
)
# Mailchimp: text merge fields hold at most 255 characters, tag names at most 100 (Mailchimp's docs;
# the 3.0.55 spec declares no maxLength on members or merge fields).
MAILCHIMP_LIMITS = FieldLimits(
    "mailchimp", name=255, text_property=255, property_name=100, list_items=100, tag=100
)


def email_problem(email: str, limits: FieldLimits) -> str | None:
    """Why `email` cannot be sent as is (None: it can). Emails are never altered: a changed address
    would be another person."""
    if len(email) > limits.email:
        return f"email is {len(email)} characters; {limits.esp} takes at most {limits.email}"
    if FORBIDDEN.search(email) or any(c.isspace() for c in email):
        return "email contains control, invisible or space characters"
    if not SIMPLE_EMAIL.fullmatch(email):
        return f"invalid email address {clean_text(email, 80)!r}"
    if len(email.rsplit("@", 1)[0]) > limits.email_local_part:
        return f"email local part longer than {limits.email_local_part} characters"
    return None


def clean_value(value: Any, limits: FieldLimits) -> Any:
    if isinstance(value, str):
        return clean_text(value, limits.text_property)
    if isinstance(value, float) and value != value:  # NaN: JSON has none
        return None
    if isinstance(value, (list, tuple)):
        return [clean_value(item, limits) for item in list(value)[: limits.list_items]]
    if isinstance(value, dict):
        return {clean_text(str(k), limits.property_name): clean_value(v, limits) for k, v in value.items()}
    return value


def sanitise_record(record: ProfileRecord, limits: FieldLimits) -> ProfileRecord | str:
    """The record as it may go to the ESP, or the reason it cannot go at all."""
    problem = email_problem(record.email, limits)
    if problem:
        return problem
    key = record.customer_key
    if len(key) > limits.customer_key or FORBIDDEN.search(key):
        return f"customer key unusable as an external id (control characters or over {limits.customer_key})"
    first, last = (
        clean_text(name, limits.name) if name is not None else None
        for name in (record.first_name, record.last_name)
    )
    properties = {
        clean_text(str(name), limits.property_name): clean_value(value, limits)
        for name, value in record.properties.items()
    }
    clean = replace(record, first_name=first, last_name=last, properties=properties)
    if limits.profile_bytes is not None:
        size = len(orjson.dumps([clean.email, clean.customer_key, first, last, properties]))
        if size > limits.profile_bytes:
            return f"profile is {size} bytes once cleaned; {limits.esp} takes at most {limits.profile_bytes}"
    return clean


def prepare_records(
    records: Sequence[ProfileRecord], limits: FieldLimits
) -> tuple[list[ProfileRecord], list[RecordOutcome]]:
    """(the records cleaned for sending, outcomes `rejected` for those that cannot be sent)."""
    ready: list[ProfileRecord] = []
    refused: list[RecordOutcome] = []
    for record in records:
        clean = sanitise_record(record, limits)
        if isinstance(clean, str):
            refused.append(RecordOutcome(record.customer_key, record.email, "rejected", f"not sent: {clean}"))
        else:
            ready.append(clean)
    return ready, refused
