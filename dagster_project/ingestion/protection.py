"""Emails and phones tokenised and encrypted before they reach a raw table (privacy/field_crypto.py).

Each raw email/phone column holds the token (keyed hash of the normalised value) under its own name, so
dbt matches and joins as before; `<column>_encrypted` holds the Fernet ciphertext and `<column>_facts`
(jsonb) what SQL can no longer compute from a token: validity, placeholder, the masked form, and the
derived tokens the identity models match on. Web events carry the email in `traits`: `traits.email` is
the token, `traits.email_encrypted` and `traits.email_facts` sit beside it.

Event rows are protected in Python before COPY; CRM and shop rows in their temporary staging table
(never WAL-logged) before the upsert. Warehouses loaded before this are converted once, in place, in
one transaction per table (`convert_plaintext`, from `loaders.ensure_tables`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dagster_project.privacy import field_crypto

# raw table -> its plaintext identifier columns (web_events: inside traits)
PROTECTED: dict[str, tuple[str, ...]] = {
    "crm_contacts": ("email", "phone"),
    "shop_customers": ("email", "phone"),
    "esp_events": ("email",),
}
WEB_TABLE = "web_events"
EXTRA_TYPES = (("_encrypted", "text"), ("_facts", "jsonb"))


def extra_columns(table: str) -> list[tuple[str, str]]:
    """The columns a protected raw table has besides its source's: (name, SQL type)."""
    return [
        (f"{column}{suffix}", pg_type)
        for column in PROTECTED.get(table, ())
        for suffix, pg_type in EXTRA_TYPES
    ]


class RowProtector:
    """Protects values with one FieldProtector, remembering each distinct value of a load."""

    def __init__(self, protector: field_crypto.FieldProtector) -> None:
        self.protector = protector
        self._emails: dict[str | None, tuple] = {}
        self._phones: dict[str | None, tuple] = {}

    def email(self, raw: str | None) -> tuple[str | None, str | None, dict | None]:
        if raw not in self._emails:
            self._emails[raw] = email_fields(self.protector, raw)
        return self._emails[raw]

    def phone(self, raw: str | None) -> tuple[str | None, str | None, dict | None]:
        if raw not in self._phones:
            self._phones[raw] = phone_fields(self.protector, raw)
        return self._phones[raw]

    def value(self, column: str, raw: str | None) -> tuple[str | None, str | None, dict | None]:
        return self.email(raw) if column == "email" else self.phone(raw)

    def traits(self, traits: dict | None) -> dict | None:
        """Web identify traits with the email replaced by its token, ciphertext and facts."""
        if not traits or "email" not in traits:
            return traits
        raw = traits["email"]
        token, ciphertext, facts = self.email(
            raw if isinstance(raw, str) else None if raw is None else str(raw)
        )
        return {**traits, "email": token, "email_encrypted": ciphertext, "email_facts": facts}

    def record(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        """A raw row (column -> value) as it is stored: identifiers protected, extra columns added."""
        stored = dict(record)
        for column in PROTECTED.get(table, ()):
            stored[column], stored[f"{column}_encrypted"], stored[f"{column}_facts"] = self.value(
                column, record.get(column)
            )
        if table == WEB_TABLE and "traits" in stored:
            stored["traits"] = self.traits(stored["traits"])
        return stored


def email_fields(protector: field_crypto.FieldProtector, raw: str | None) -> tuple:
    protected = protector.protect_email(raw)
    if protected.token is None:
        return None, None, None
    email = protected.value or ""
    facts = {
        "valid": protected.is_valid,
        "placeholder": protected.is_placeholder,
        "has_at": protected.has_at,
        "without_at": protected.without_at_token,
        "without_tld": protected.without_tld_token,
        "local_part": protector.token(email.split("@")[0]),
        "domain": protector.token(email.split("@")[1]) if "@" in email else None,
        "masked": _masked_email(email),
    }
    return protected.token, protected.ciphertext, facts


def _masked_email(email: str) -> str:
    """As dim_customers_masked showed it: first letter, then the part after the first "@"."""
    domain = email.split("@")[1] if "@" in email else ""
    return f"{email[:1]}***@{domain}"


def phone_fields(protector: field_crypto.FieldProtector, raw: str | None) -> tuple:
    """Facts of a raw phone; a phone that is no usable number still says how it was written."""
    protected = protector.protect_phone(raw)
    if protected.token is None:
        return None, None, None
    phone = protected.value or ""
    facts = {
        "placeholder_reason": protected.placeholder_reason,
        "international": protected.is_international,
        "national": protected.national_token,
        "national_numbers": list(protected.national_number_tokens),
        "masked": f"***{phone[-2:]}",
    }
    return protected.token, protected.ciphertext, facts


def row_protector(conn: psycopg.Connection) -> RowProtector:
    return RowProtector(field_crypto.protector(conn))


def tuple_protector(conn: psycopg.Connection, table: str, columns: Iterable[str]) -> Callable[[tuple], tuple]:
    """For rows as tuples in `columns` order: identifiers replaced, extra columns appended (COPY paths)."""
    names = list(columns)
    protector = row_protector(conn)
    positions = [(names.index(column), column) for column in PROTECTED.get(table, ())]
    traits_at = names.index("traits") if table == WEB_TABLE else None

    def protect(row: tuple) -> tuple:
        values = list(row)
        extra: list[Any] = []
        for position, column in positions:
            values[position], ciphertext, facts = protector.value(column, values[position])
            extra += [ciphertext, facts]
        if traits_at is not None:
            values[traits_at] = protector.traits(values[traits_at])
        return (*values, *extra)

    return protect


def protect_staging(
    conn: psycopg.Connection, staging: sql.Identifier, table: str, where: sql.Composable | None = None
) -> None:
    """Protect the rows of a temporary staging table in place (its extra columns added here); rows not
    matching `where` (rejected ones, judged on their plaintext) stay as they are and are not loaded."""
    columns = PROTECTED.get(table, ())
    if not columns:
        return
    _add_extra_columns(conn, staging, table)
    _protect_in_place(conn, staging, table, columns, where or sql.SQL("true"))


def _add_extra_columns(conn: psycopg.Connection, target: sql.Identifier, table: str) -> None:
    for name, pg_type in extra_columns(table):
        conn.execute(
            sql.SQL("alter table {} add column if not exists {} {}").format(
                target, sql.Identifier(name), sql.SQL(pg_type)
            )
        )


def _fill_mapping(conn: psycopg.Connection, protector: RowProtector, column: str, values: list[str]) -> None:
    """The temporary table _protected: plaintext -> token, ciphertext, facts (dropped at commit)."""
    conn.execute(
        "create temporary table if not exists _protected (plain text primary key, token text, "
        "ciphertext text, facts jsonb) on commit drop"
    )
    conn.execute("truncate _protected")
    with conn.cursor().copy("copy _protected (plain, token, ciphertext, facts) from stdin") as copy:
        copy.set_types(["text", "text", "text", "jsonb"])
        for value in values:
            token, ciphertext, facts = protector.value(column, value)
            copy.write_row((value, token, ciphertext, Jsonb(facts) if facts is not None else None))


def _protect_in_place(
    conn: psycopg.Connection,
    target: sql.Composable,
    table: str,
    columns: tuple[str, ...],
    where: sql.Composable,
) -> int:
    """Each distinct plaintext of `columns` (rows matching `where`) replaced by token, ciphertext, facts."""
    protector = row_protector(conn)
    changed = 0
    for column in columns:
        identifier = sql.Identifier(column)
        values = [
            row[0]
            for row in conn.execute(
                sql.SQL("select distinct {c} from {t} where {c} is not null and {w}").format(
                    c=identifier, t=target, w=where
                )
            )
        ]
        if not values:
            continue
        _fill_mapping(conn, protector, column, values)
        changed += conn.execute(
            sql.SQL(
                "update {t} as t set {c} = p.token, {enc} = p.ciphertext, {facts} = p.facts "
                "from _protected as p where t.{c} = p.plain and {w}"
            ).format(
                t=target,
                c=identifier,
                enc=sql.Identifier(f"{column}_encrypted"),
                facts=sql.Identifier(f"{column}_facts"),
                w=where,
            )
        ).rowcount
    return changed


def convert_plaintext(conn: psycopg.Connection) -> dict[str, int]:
    """Raw tables loaded before field encryption: tokenise and encrypt their rows once, in place.

    Runs inside the caller's transaction (ensure_tables'); a table is converted when it lacks the extra
    columns (they are added here). Returns the rows changed per table.
    """
    converted: dict[str, int] = {}
    for table, columns in PROTECTED.items():
        present = {
            row[0]
            for row in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'raw' "
                "and table_name = %s",
                (table,),
            )
        }
        if not present or all(name in present for name, _ in extra_columns(table)):
            continue
        target = sql.Identifier("raw", table)
        _add_extra_columns(conn, target, table)
        converted[table] = _protect_in_place(conn, target, table, columns, sql.SQL("true"))
    converted.update(_convert_web_traits(conn))
    return converted


def _convert_web_traits(conn: psycopg.Connection) -> dict[str, int]:
    """Web events whose traits still carry a plaintext email (no email_facts next to it)."""
    if conn.execute("select to_regclass('raw.web_events') is null").fetchone()[0]:
        return {}
    conn.execute(
        "create table if not exists ops.field_protection (table_name text primary key, "
        "converted_at timestamptz not null default now())"
    )
    # `select 1`: a zero-column row is an empty tuple, which is falsy (every load rescanned the table)
    marker = conn.execute("select 1 from ops.field_protection where table_name = 'web_events'").fetchone()
    if marker is not None:
        return {}
    rows = conn.execute(
        "select distinct traits ->> 'email' from raw.web_events "
        "where traits ? 'email' and not traits ? 'email_facts' and traits ->> 'email' is not null"
    ).fetchall()
    changed = 0
    if rows:
        _fill_mapping(conn, row_protector(conn), "email", [raw for (raw,) in rows])
        changed = conn.execute(
            "update raw.web_events as w set traits = w.traits || jsonb_build_object('email', p.token, "
            "'email_encrypted', p.ciphertext, 'email_facts', p.facts) "
            "from _protected as p where w.traits ->> 'email' = p.plain and not w.traits ? 'email_facts'"
        ).rowcount
    conn.execute("insert into ops.field_protection (table_name) values ('web_events') on conflict do nothing")
    return {WEB_TABLE: changed}
