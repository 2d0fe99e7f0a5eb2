"""Deleting a person everywhere Sendwise keeps data, and forwarding the deletion to the ESP.

Raw is the root: rows carrying one of the person's identities (keyed-hash match, see
identities.RAW_IDENTITIES) go first, and their emails, phones and ids join what the person is known by.
Then every table of Sendwise's schemas (dbt's staging, intermediate, marts and snapshots, the identity
memory that survives `--full-refresh`, ml, activation, ops' quarantine and previews) loses each row
that names one of those: a text column equal to an id, email, phone or customer key (digit-only ids
only in id columns), a phone column with the same digits, a text or JSON value containing an email or
customer key, a JSON string equal to an id, an integer customer or order id. Names alone never delete
a row (other people share them). Views need nothing: they read the tables.

Emails and phones are tokens in the warehouse (ingestion/protection.py): the person's plaintexts, which
the ESP and any quarantined record text know them by, come from decrypting the ciphertexts of their
raw rows and profiles (privacy/field_crypto.py), in memory only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import psycopg
from psycopg import sql

from dagster_project.privacy.field_crypto import load_cipher
from dagster_project.privacy.identities import RAW_IDENTITIES
from dagster_project.privacy.keys import load
from dagster_project.privacy.suppression import Person, raw_match_condition
from dagster_project.warehouse.connection import table_exists

log = logging.getLogger(__name__)

SCHEMAS = ("raw", "staging", "intermediate", "marts", "snapshots", "ml", "activation", "ops")
KEEP = {
    ("ops", "privacy_requests"),
    ("ops", "privacy_keys"),
    ("ops", "suppressed_identities"),
    ("ops", "load_log"),
    ("ops", "load_state"),
}
INTEGER_ID_COLUMNS = ("customer_id", "shop_customer_id", "user_id")
DIGIT_ID_COLUMNS = {"record_id", "identifier_value", "record_key", *INTEGER_ID_COLUMNS}
TEXT_TYPES = {"text", "character varying", "character"}
JSON_TYPES = {"json", "jsonb"}
INTEGER_TYPES = {"bigint", "integer", "smallint", "numeric"}
RAW_VALUE_COLUMNS = ("email", "phone", "contact_id", "customer_id", "anonymous_id", "user_id", "profile_id")
ENCRYPTED_COLUMNS = ("email_encrypted", "phone_encrypted")


def delete_everywhere(conn: psycopg.Connection, person: Person) -> tuple[dict[str, int], list[str]]:
    """Rows removed per table, and the person's emails (for the ESP). Runs in the caller's transaction."""
    removed: dict[str, int] = {}
    values = {value for _, value in person.identifiers} | person.customer_keys
    cipher = load_cipher()
    plaintexts = _profile_plaintexts(conn, person.customer_keys, cipher)
    order_ids: set[int] = set()
    hashes = sql.SQL("(select unnest(%(h)s::text[]))")
    for table in RAW_IDENTITIES:
        if not table_exists(conn, f"raw.{table}"):
            continue
        rows = conn.execute(
            sql.SQL("delete from raw.{} where {} returning to_jsonb(raw.{}.*)").format(
                sql.Identifier(table), raw_match_condition(table, hashes), sql.Identifier(table)
            ),
            {"h": sorted(person.hashes)},
        ).fetchall()
        for (row,) in rows:
            values.update(str(row[c]).strip() for c in RAW_VALUE_COLUMNS if row.get(c) not in (None, ""))
            plaintexts.update(cipher.decrypt(row[c]) for c in ENCRYPTED_COLUMNS if row.get(c))
            if isinstance(row.get("traits"), dict) and row["traits"].get("email"):
                values.add(str(row["traits"]["email"]).strip())
                if row["traits"].get("email_encrypted"):
                    plaintexts.add(cipher.decrypt(row["traits"]["email_encrypted"]))
            if table == "shop_orders":
                order_ids.add(int(row["order_id"]))
        if rows:
            removed[f"raw.{table}"] = len(rows)
    values = {v for v in values | plaintexts if v}
    emails = {v.lower() for v in plaintexts if v and "@" in v}
    order_ids |= _order_ids(conn, person.customer_keys)
    key = load(conn)  # their orders' items, should a source deliver them again, are dropped at load too
    person.hashes.update(key.digest(f"shop_order_id:{order_id}") for order_id in order_ids)
    for schema, table, columns in _tables(conn):
        count = _delete_matching(conn, schema, table, columns, values, order_ids, person.customer_keys)
        if count:
            name = f"{schema}.{table}"
            removed[name] = removed.get(name, 0) + count
    return removed, sorted(emails)


def _profile_plaintexts(conn: psycopg.Connection, customer_keys: set[str], cipher) -> set[str]:
    """The emails and phones of the person's profiles, decrypted (a person may be in no raw row)."""
    if not customer_keys or not table_exists(conn, "marts.dim_customers"):
        return set()
    columns = {
        row[0]
        for row in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'dim_customers'"
        )
    }
    if not {"email_encrypted", "phone_encrypted"} <= columns:
        return set()
    rows = conn.execute(
        "select email_encrypted, phone_encrypted from marts.dim_customers where customer_key = any(%s)",
        (list(customer_keys),),
    ).fetchall()
    return {cipher.decrypt(value) for row in rows for value in row if value}


def _order_ids(conn: psycopg.Connection, customer_keys: set[str]) -> set[int]:
    if not customer_keys or not table_exists(conn, "marts.fct_orders"):
        return set()
    rows = conn.execute(
        "select order_id from marts.fct_orders where customer_key = any(%s)", (list(customer_keys),)
    ).fetchall()
    return {int(order_id) for (order_id,) in rows if order_id is not None and str(order_id).isdigit()}


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, list[tuple[str, str]]]]:
    rows = conn.execute(
        """
        select c.table_schema, c.table_name, c.column_name, c.data_type
        from information_schema.columns c
        join information_schema.tables t using (table_schema, table_name)
        where t.table_type = 'BASE TABLE' and c.table_schema = any(%s)
        order by c.table_schema, c.table_name, c.ordinal_position
        """,
        (list(SCHEMAS),),
    ).fetchall()
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        if (schema, table) not in KEEP:
            tables.setdefault((schema, table), []).append((column, data_type))
    return [(schema, table, columns) for (schema, table), columns in tables.items()]


def _delete_matching(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: list[tuple[str, str]],
    values: set[str],
    order_ids: set[int],
    customer_keys: set[str],
) -> int:
    exact = sorted({v.lower() for v in values if not v.isdigit()})
    digit_ids = sorted(v for v in values if v.isdigit())
    phone_digits = sorted({re.sub(r"\D", "", v) for v in values if len(re.sub(r"\D", "", v)) >= 8})
    contained = [_like(v) for v in sorted({v.lower() for v in values if "@" in v} | customer_keys)]
    json_strings = [_like(f'"{v}"') for v in sorted(values)]
    params = {
        "exact": exact,
        "digits": digit_ids,
        "phones": phone_digits,
        "contained": contained,
        "json": json_strings,
        "ints": [int(v) for v in digit_ids],
        "orders": sorted(order_ids),
    }
    conditions: list[sql.Composable] = []
    for name, data_type in columns:
        column = sql.Identifier(name)
        if data_type in TEXT_TYPES:
            conditions.append(sql.SQL("lower(btrim({})) = any(%(exact)s)").format(column))
            if contained:
                conditions.append(sql.SQL("lower({}) like any(%(contained)s)").format(column))
            if name in DIGIT_ID_COLUMNS and digit_ids:
                conditions.append(sql.SQL("btrim({}) = any(%(digits)s)").format(column))
            if "phone" in name and phone_digits:
                digits = sql.SQL("regexp_replace({}, '\\D', '', 'g')").format(column)
                conditions.append(sql.SQL("{} = any(%(phones)s)").format(digits))
        elif data_type in JSON_TYPES:
            conditions.append(sql.SQL("lower({}::text) like any(%(contained)s)").format(column))
            conditions.append(sql.SQL("{}::text like any(%(json)s)").format(column))
        elif data_type in INTEGER_TYPES and name in INTEGER_ID_COLUMNS and digit_ids:
            conditions.append(sql.SQL("{} = any(%(ints)s)").format(column))
        elif data_type in INTEGER_TYPES and name == "order_id" and order_ids:
            conditions.append(sql.SQL("{} = any(%(orders)s)").format(column))
    if not conditions or not (exact or digit_ids):
        return 0
    statement = sql.SQL("delete from {}.{} where {}").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(" or ").join(conditions)
    )
    return conn.execute(statement, params).rowcount


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def vacuum(conn: psycopg.Connection, removed: dict[str, int]) -> None:
    """Reclaim the deleted rows' space so their bytes do not linger in the table files (autocommit only)."""
    if conn.autocommit:
        for name in removed:
            schema, table = name.split(".", 1)
            conn.execute(sql.SQL("vacuum {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))


def forward_to_esp(client, emails: Iterable[str]) -> str:
    """Ask the ESP to delete the profiles; the outcome as text (counts and reasons, never an email)."""
    emails = sorted(set(emails))
    if not emails:
        return "no email known: nothing to forward"
    if client is None:
        return "no ESP client configured: not forwarded"
    delete_profiles = getattr(client, "delete_profiles", None)
    if delete_profiles is None:
        log.warning("ESP deletion not supported by this client (%s)", getattr(client, "name", type(client)))
        return "ESP deletion not supported by this client"
    try:
        outcomes = delete_profiles(emails)
    except Exception as error:  # an ESP failure must not undo the warehouse deletion
        return f"failed: {type(error).__name__}"
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "no outcome"
