"""Python ports of dbt's identifier macros (dbt/macros/normalize_identifiers.sql) and identity checks.

Field encryption tokenises emails and phones before they reach the warehouse, so the normalisation
that dbt did in SQL has to happen here first, with exactly the same result: a property test runs the
macros' SQL on PostgreSQL against these functions on generated hostile strings. The SQL semantics
copied on purpose: `trim`/`ltrim` strip spaces only, `lower` and the regex class `\\s` follow the
embedded warehouse's C.UTF-8 ctype (glibc: Unicode simple lower-casing, its own set of spaces), `$`
matches at the very end only.

The parameters (known providers, default calling code, placeholder local parts) are dbt vars, read from
dbt/dbt_project.yml so that both sides share one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import yaml

from dagster_project.settings import PROJECT_ROOT

DBT_PROJECT_FILE = PROJECT_ROOT / "dbt" / "dbt_project.yml"
# PostgreSQL's \s in the C.UTF-8 ctype (glibc's iswspace: no-break spaces and \x1c-\x1f, \x85 are not)
_SPACE = "[ \t\n\r\v\f\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]"
_SIMPLE_LOWER = {0x130: "i", 0x3A3: "\u03c3"}
_AT_WORDS = re.compile(rf"{_SPACE}*(\(at\)|\[at\]|{_SPACE}at{_SPACE}){_SPACE}*")
_WRAPPING = re.compile(rf"^mailto:|^<|>\Z|{_SPACE}")
_REPEATED_AT = re.compile("@{2,}")
_VALID_EMAIL = re.compile(r"[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}")
_NON_DIGITS = re.compile("[^0-9]")
_REPEATED_DIGIT = re.compile(r"\+[0-9]?([0-9])\1{7,}")
_COUNTING = re.compile(r"(0123456789|1234567890|9876543210)\Z")


@dataclass(frozen=True)
class IdentityVars:
    """The dbt vars the normalisation depends on."""

    email_known_providers: tuple[str, ...]
    default_calling_code: str
    placeholder_local_parts: tuple[str, ...]

    @property
    def provider_suffix(self) -> re.Pattern[str]:
        return _provider_suffix(self.email_known_providers)


@cache
def _provider_suffix(providers: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\.?(" + "|".join(re.escape(p) for p in providers) + r")\Z", re.DOTALL)


@cache
def identity_vars() -> IdentityVars:
    variables = yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]
    return IdentityVars(
        email_known_providers=tuple(variables["email_known_providers"]),
        default_calling_code=str(variables["identity_default_phone_country_code"]),
        placeholder_local_parts=tuple(p.lower() for p in variables["identity_placeholder_email_local_parts"]),
    )


def sql_lower(value: str) -> str:
    """PostgreSQL's lower() in C.UTF-8: character by character (Python's maps "İ" to two characters and
    a final "Σ" to "ς")."""
    return value.translate(_SIMPLE_LOWER).lower()


def normalize_email(value: str | None, variables: IdentityVars | None = None) -> str | None:
    """= the `normalize_email` macro: cleaned, lower-cased, well-known providers repaired; '' is None."""
    if value is None:
        return None
    variables = variables or identity_vars()
    cleaned = _AT_WORDS.sub("@", sql_lower(value.strip(" ")))
    cleaned = _REPEATED_AT.sub("@", _WRAPPING.sub("", cleaned))
    if "@" not in cleaned and _provider_before(cleaned, variables):
        cleaned = variables.provider_suffix.sub(r"@\1", cleaned, count=1)
    else:
        for provider in variables.email_known_providers:
            name, tld = provider.split(".", 1)
            if cleaned.endswith("@" + name):
                cleaned += "." + tld
                break
    return cleaned or None


def _provider_before(cleaned: str, variables: IdentityVars) -> bool:
    """`cleaned ~ '.\\.?(providers)$'`: a known provider at the end, at least one character before it."""
    return _provider_after_one(variables.email_known_providers).search(cleaned) is not None


@cache
def _provider_after_one(providers: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r".\.?(" + "|".join(re.escape(p) for p in providers) + r")\Z", re.DOTALL)


def is_valid_email(email: str | None) -> bool:
    """= the `is_valid_email` macro on a normalised email."""
    return email is not None and _VALID_EMAIL.fullmatch(email) is not None


def is_placeholder_email(email: str | None, variables: IdentityVars | None = None) -> bool:
    """The local part stands for "no email" (int_identity__identifier_checks' 'placeholder email')."""
    variables = variables or identity_vars()
    return email is not None and email.split("@", 1)[0] in variables.placeholder_local_parts


def phone_e164(value: str | None, variables: IdentityVars | None = None) -> str | None:
    """= the `phone_e164` macro: E.164 when possible, else None."""
    calling_code = (variables or identity_vars()).default_calling_code
    value = value or ""
    digits = _NON_DIGITS.sub("", value)
    if value.lstrip(" ").startswith("+") and 8 <= len(digits) <= 15:
        return "+" + digits
    if digits.startswith("00") and 10 <= len(digits) <= 17:
        return "+" + digits[2:]
    if len(digits) == 10:
        return f"+{calling_code}{digits}"
    if len(digits) == 10 + len(calling_code) and digits.startswith(calling_code):
        return "+" + digits
    return None


def phone_placeholder_reason(phone: str | None) -> str | None:
    """int_identity__identifier_checks' placeholder phone reasons for an E.164 number."""
    if phone is None:
        return None
    if _REPEATED_DIGIT.fullmatch(phone):
        return "placeholder phone (one repeated digit)"
    if _COUNTING.search(phone):
        return "placeholder phone (counting sequence)"
    return None


def is_international_phone(raw: str | None) -> bool:
    """`ltrim(phone_raw) ~ '^(\\+|00)'`: written with its calling code."""
    return raw is not None and raw.lstrip(" ").startswith(("+", "00"))


def phone_digits(raw: str | None) -> str:
    return _NON_DIGITS.sub("", raw or "")
