"""Identifiers of a person as privacy requests name them, and where the raw layer carries them.

An identity is `type:value` with the value normalised the way the identity models normalise it
(emails trimmed and lower-cased, phones in E.164), and is only ever stored as its keyed hash.
"""

from __future__ import annotations

from dagster_project.privacy.normalize import phone_e164

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
DEFAULT_CALLING_CODE = "1"  # dbt var identity_default_phone_country_code (for RAW_IDENTITIES' SQL)


class IdentifierError(ValueError):
    pass


def normalize(kind: str, value: str) -> str:
    """The value as the identity models hold it (see dbt/macros/normalize_identifiers.sql)."""
    value = value.strip()
    if kind == "email":
        value = value.lower()
        if value.startswith("mailto:"):
            value = value[len("mailto:") :]
        if "@" not in value:
            raise IdentifierError(f"not an email: {value!r}")
        return value
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


def parse(text: str) -> str:
    """`type:value` (type one of IDENTIFIER_TYPES), or a bare email, as an identity string."""
    text = text.strip()
    kind, sep, value = text.partition(":")
    if sep and kind in IDENTIFIER_TYPES:
        return identity(kind, value)
    if "@" in text:
        return identity("email", text)
    raise IdentifierError(f"{text!r}: expected type:value with type one of {', '.join(IDENTIFIER_TYPES)}")


# SQL over a raw row that yields each identity string it carries (same normalisation as above).
def _email(column: str) -> str:
    return f"'email:' || nullif(lower(btrim({column})), '')"


def _phone(column: str) -> str:
    digits = f"regexp_replace(coalesce({column}, ''), '[^0-9]', '', 'g')"
    cc = DEFAULT_CALLING_CODE
    # No "%" (LIKE) in here: these run as psycopg queries with parameters.
    return (
        f"'phone:' || case when left(ltrim(coalesce({column}, '')), 1) = '+' "
        f"and length({digits}) between 8 and 15 then '+' || {digits} "
        f"when left({digits}, 2) = '00' and length({digits}) between 10 and 17 "
        f"then '+' || substr({digits}, 3) when length({digits}) = 10 then '+{cc}' || {digits} "
        f"when length({digits}) = {10 + len(cc)} and left({digits}, {len(cc)}) = '{cc}' "
        f"then '+' || {digits} end"
    )


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
