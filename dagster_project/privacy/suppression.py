"""Who a request is about, keeping them out (ops.suppressed_identities), and the drop at load.

A request's keyed hashes are matched against the identity graph (intermediate.int_identity__identifiers
and key_history, when built) to find the whole person: every identifier and customer key they have.
All of those are stored as keyed hashes in ops.suppressed_identities, which dbt reads (the marts leave
out suppressed customer keys) and which the loaders use to drop new records about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dagster_project.privacy.identities import RAW_IDENTITIES
from dagster_project.privacy.keys import load, sql_keyed_hash
from dagster_project.warehouse.connection import table_exists

IDENTIFIERS = "intermediate.int_identity__identifiers"
KEY_HISTORY = "intermediate.int_identity__key_history"


@dataclass
class Person:
    """One request's people: plain values exist only in memory while the request runs."""

    hashes: set[str]
    customer_keys: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)


def resolve(conn: psycopg.Connection, hashes: list[str]) -> Person:
    person = Person(set(hashes))
    if table_exists(conn, IDENTIFIERS):
        history = table_exists(conn, KEY_HISTORY)
        retired = (
            f"union select surviving_key from {KEY_HISTORY} "
            f"where {sql_keyed_hash(chr(39) + 'customer_key:' + chr(39) + ' || retired_key')} = any(%(h)s)"
            if history
            else ""
        )
        rows = conn.execute(
            f"""
            with matched as (
                select customer_key from {IDENTIFIERS}
                where customer_key is not null and (
                    {sql_keyed_hash("identifier_type || ':' || identifier_value")} = any(%(h)s)
                    or {sql_keyed_hash("'customer_key:' || customer_key")} = any(%(h)s))
                {retired}
            )
            select identifier_type, identifier_value, customer_key from {IDENTIFIERS}
            where customer_key in (select customer_key from matched)
            """,
            {"h": hashes},
        ).fetchall()
        for kind, value, customer_key in rows:
            person.identifiers.add((kind, value))
            person.customer_keys.add(customer_key)
        if history and person.customer_keys:
            old = conn.execute(
                f"select retired_key from {KEY_HISTORY} where surviving_key = any(%s)",
                (list(person.customer_keys),),
            ).fetchall()
            person.customer_keys.update(key for (key,) in old)
    key = load(conn)
    person.hashes.update(key.digest(f"{kind}:{value}") for kind, value in person.identifiers)
    person.hashes.update(key.digest(f"customer_key:{k}") for k in person.customer_keys)
    return person


def suppress(conn: psycopg.Connection, person: Person, request_id: str, regulation: str) -> None:
    conn.execute(
        """
        insert into ops.suppressed_identities (identity_hash, regulation, request_id)
        select unnest(%s::text[]), %s, %s
        on conflict (identity_hash) do update set regulation = case
            when suppressed_identities.regulation = 'delete' then 'delete' else excluded.regulation end
        """,
        (sorted(person.hashes), regulation, request_id),
    )


def unsuppress(conn: psycopg.Connection, person: Person) -> None:
    """Lift the suppressions of the person (never those left by a deletion: the person is gone)."""
    conn.execute(
        """
        delete from ops.suppressed_identities where regulation = 'suppress' and request_id in (
            select request_id from ops.suppressed_identities where identity_hash = any(%s))
        """,
        (sorted(person.hashes),),
    )


def raw_match_condition(table: str, hashes: sql.Composable | None = None) -> sql.Composable:
    """SQL true for a row of raw.<table> carrying one of `hashes` (default: a suppressed identity)."""
    hashes = hashes or sql.SQL("(select identity_hash from ops.suppressed_identities)")
    return sql.SQL(" or ").join(
        sql.SQL("{} in {}").format(sql.SQL(sql_keyed_hash(e)), hashes) for e in RAW_IDENTITIES[table]
    )


def drop_suppressed_records(conn: psycopg.Connection, stream: str, batch_id: str) -> int:
    """Delete the rows of this load batch that are about a suppressed (or deleted) person; how many.

    Called by the loaders after the batch landed in raw.<stream>, inside the load's transaction, so
    suppressed records are counted (received = loaded + quarantined + suppressed) and stored nowhere.
    """
    if stream not in RAW_IDENTITIES or not table_exists(conn, "ops.suppressed_identities"):
        return 0
    if conn.execute("select not exists (select from ops.suppressed_identities)").fetchone()[0]:
        return 0
    deleted = conn.execute(
        sql.SQL("delete from raw.{} as t where t._batch_id = %s and ({}) returning {}").format(
            sql.Identifier(stream),
            raw_match_condition(stream),
            sql.SQL("t.order_id" if stream == "shop_orders" else "null"),
        ),
        (batch_id,),
    ).fetchall()
    orders = [str(order_id) for (order_id,) in deleted if order_id is not None]
    if orders:  # their order items are about them too (they may come in a later load)
        key = load(conn)
        conn.execute(
            """
            insert into ops.suppressed_identities (identity_hash, regulation, request_id)
            select unnest(%s::text[]), 'suppress', 'load:' || %s on conflict (identity_hash) do nothing
            """,
            ([key.digest(f"shop_order_id:{o}") for o in orders], batch_id),
        )
    return len(deleted)
