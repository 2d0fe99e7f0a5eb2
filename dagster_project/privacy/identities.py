"""Identifiers of a person as privacy requests name them, and where the raw layer carries them.

An identity is `type:value` with the value normalised the way the loaders normalise it (privacy/normalize.py:
emails cleaned and lower-cased, phones in E.164), and is only ever stored as its keyed hash. The warehouse
holds emails and phones as tokens (keyed hashes, ingestion/protection.py), so an email or phone identity
is hashed as `type:token` (`hashed`): the same string SQL builds from a raw or an identity-graph row.
"""

from __future__ import annotations

from dagster_project.privacy.keys import HashKey
from dagster_project.privacy.normalize import normalize_email, phone_e164

IDENTIFIER_TYPES = (
    "email",
    "phone",
    "customer_key",
    "crm_contact_id",
    "shop_customer_id",
    "esp_profile_id",
    "anonymous_id",
)
SOURCE_ID_TYPES = ("crm_contact_id", "shop_customer_id", "esp_profile_id", "anonymous_id")


class IdentifierError(ValueError):
    pass


def normalize(kind: str, value: str) -> str:
    """The value as the identity models hold it (see dbt/macros/normalize_identifiers.sql)."""
    if kind == "email":
        email = normalize_email(value)
        if email is None or "@" not in email:
            raise IdentifierError(f"not an email: {value.strip()!r}")
        return email
    value = value.strip()
    if kind == "phone":
        e164 = phone_e164(value)
        if e164 is None:
            raise IdentifierError("not a phone number (8 to 15 digits, or a 10-digit national number)")
        return e164
    if kind not in IDENTIFIER_TYPES:
        expected = ", ".join(IDENTIFIER_TYPES)
        raise IdentifierError(f"unknown identifier type {kind!r}: expected one of {expected}")
    if not value:
        raise IdentifierError(f"empty {kind}")
    return value


def identity(kind: str, value: str) -> str:
    return f"{kind}:{normalize(kind, value)}"


TOKENISED_TYPES = ("email", "phone")


def hashed(key: HashKey, identity_string: str) -> str:
    """The keyed hash a request stores for an identity (emails and phones by their token)."""
    kind, _, value = identity_string.partition(":")
    if kind in TOKENISED_TYPES:
        identity_string = f"{kind}:{key.digest(value)}"
    return key.digest(identity_string)


def parse(text: str) -> str:
    """`type:value` (type one of IDENTIFIER_TYPES), or a bare email, as an identity string."""
    text = text.strip()
    kind, sep, value = text.partition(":")
    if sep and kind in IDENTIFIER_TYPES:
        return identity(kind, value)
    if "@" in text:
        return identity("email", text)
    raise IdentifierError(f"{text!r}: expected type:value with type one of {', '.join(IDENTIFIER_TYPES)}")


# SQL over a raw row that yields each identity string it carries: raw emails and phones are tokens.
def _email(column: str) -> str:
    return f"'email:' || nullif({column}, '')"


def _phone(column: str) -> str:
    return f"'phone:' || nullif({column}, '')"


RAW_IDENTITIES: dict[str, tuple[str, ...]] = {
    "shop_customers": ("'shop_customer_id:' || customer_id", _email("email"), _phone("phone")),
    "shop_orders": ("'shop_customer_id:' || customer_id", "'shop_order_id:' || order_id"),
    "shop_order_items": ("'shop_order_id:' || order_id",),
    "crm_contacts": ("'crm_contact_id:' || contact_id", _email("email"), _phone("phone")),
    "web_events": (
        "'anonymous_id:' || anonymous_id",
        "'shop_customer_id:' || nullif(btrim(user_id), '')",
        _email("traits->>'email'"),
    ),
    "esp_events": ("'esp_profile_id:' || profile_id", _email("email")),
}
"""Per raw table, SQL expressions for the identities a row carries (null when the column is empty)."""
