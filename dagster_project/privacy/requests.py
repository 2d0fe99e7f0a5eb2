"""Privacy requests (regulations): recorded in ops.privacy_requests, carried out by the next run.

Like Segment's regulations: `delete` (every row about the person goes, everywhere, and is forwarded to
the ESP; the person's identities are then kept out at load), `suppress` (their records stop flowing into
profiles, ML and the ESP, and new records are dropped at load) and `unsuppress`. A request names up to
MAX_IDENTIFIERS identifiers and keeps only their keyed hashes; its row is also the audit: when, what
(hashes), rows removed per table, the ESP's outcome.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dagster_project.privacy import identities, keys

log = logging.getLogger(__name__)

REGULATIONS = ("delete", "suppress", "unsuppress")
MAX_IDENTIFIERS = 5_000

DDL = """
create schema if not exists ops;
create table if not exists ops.privacy_requests (
    request_id text primary key,
    regulation text not null check (regulation in ('delete', 'suppress', 'unsuppress')),
    identity_hashes text[] not null,
    status text not null default 'pending',
    requested_at timestamptz not null default now(),
    executed_at timestamptz,
    people_found integer,
    rows_removed jsonb,
    esp_outcome text,
    note text
);
create table if not exists ops.suppressed_identities (
    identity_hash text primary key,
    regulation text not null,
    request_id text not null,
    suppressed_at timestamptz not null default now()
);
revoke all on ops.privacy_requests, ops.suppressed_identities from public;
"""


def ensure_tables(conn: psycopg.Connection) -> None:
    with conn.transaction():
        if conn.execute("select to_regclass('ops.suppressed_identities') is null").fetchone()[0]:
            conn.execute("select pg_advisory_xact_lock(hashtext('sendwise.privacy.ddl'))")
            conn.execute(DDL)


def install_at(url: str) -> None:
    """The hash key and the privacy tables in the warehouse at `url` (dbt reads both)."""
    from dagster_project.warehouse import connection

    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        keys.install(conn)
        ensure_tables(conn)


def read_identifiers(path: Path) -> list[str]:
    """Identities from a file: one `type:value` (or bare email) a line; # comments and blanks skipped."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            found.append(identities.parse(line))
        except identities.IdentifierError as error:
            raise identities.IdentifierError(f"{path}:{number}: {error}") from None
    return found


def submit(conn: psycopg.Connection, regulation: str, identity_strings: Iterable[str]) -> str:
    """Record a request (identities as `type:value`); returns its id. Only keyed hashes are stored."""
    if regulation not in REGULATIONS:
        raise ValueError(f"regulation {regulation!r}: expected one of {', '.join(REGULATIONS)}")
    key = keys.load(conn)
    hashes = sorted({identities.hashed(key, value) for value in identity_strings})
    if not hashes:
        raise ValueError("a privacy request needs at least one identifier")
    if len(hashes) > MAX_IDENTIFIERS:
        raise ValueError(f"{len(hashes)} identifiers: at most {MAX_IDENTIFIERS} per request")
    request_id = f"pr_{uuid.uuid4().hex[:16]}"
    with conn.transaction():
        conn.execute(
            "insert into ops.privacy_requests (request_id, regulation, identity_hashes) values (%s, %s, %s)",
            (request_id, regulation, hashes),
        )
    return request_id


@dataclass
class Outcome:
    request_id: str
    regulation: str
    people_found: int = 0
    rows_removed: dict[str, int] = field(default_factory=dict)
    esp_outcome: str | None = None
    note: str | None = None

    def summary(self) -> str:
        removed = sum(self.rows_removed.values())
        text = f"{self.request_id} {self.regulation}: {self.people_found} people found"
        if self.regulation == "delete":
            text += f", {removed} rows removed from {len(self.rows_removed)} tables; ESP: {self.esp_outcome}"
        return text


def execute_pending_at(url: str, client_factory: Callable[[], tuple] | None = None) -> list[Outcome]:
    """execute_pending on the warehouse at `url`; the ESP client is built only when a deletion needs it."""
    from dagster_project.warehouse import connection

    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        ensure_tables(conn)
        client = None
        if client_factory is not None and any(r == "delete" for _, r, _ in pending(conn)):
            try:
                client, _ = client_factory()
            except Exception as error:  # a misconfigured ESP must not block the warehouse deletion
                log.warning("no ESP client for privacy deletions: %s", type(error).__name__)
        try:
            return execute_pending(conn, client)
        finally:
            if client is not None:
                client.close()


def pending(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    return conn.execute(
        "select request_id, regulation, identity_hashes from ops.privacy_requests "
        "where status = 'pending' order by requested_at, request_id"
    ).fetchall()


def execute_pending(conn: psycopg.Connection, esp_client=None) -> list[Outcome]:
    """Carry out every pending request in the order they came; each commits with its audit row."""
    from dagster_project.privacy import deletion, suppression

    outcomes = []
    for request_id, regulation, hashes in pending(conn):
        outcome = Outcome(request_id, regulation)
        emails: list[str] = []
        with conn.transaction():
            person = suppression.resolve(conn, hashes)
            outcome.people_found = len(person.customer_keys)
            if regulation == "suppress":
                suppression.suppress(conn, person, request_id, "suppress")
            elif regulation == "unsuppress":
                suppression.unsuppress(conn, person)
            else:
                outcome.rows_removed, emails = deletion.delete_everywhere(conn, person)
                suppression.suppress(conn, person, request_id, "delete")
        if regulation == "delete":
            deletion.vacuum(conn, outcome.rows_removed)
            outcome.esp_outcome = deletion.forward_to_esp(esp_client, emails)
        with conn.transaction():
            conn.execute(
                "update ops.privacy_requests set status = 'done', executed_at = now(), people_found = %s, "
                "rows_removed = %s, esp_outcome = %s where request_id = %s",
                (outcome.people_found, json.dumps(outcome.rows_removed), outcome.esp_outcome, request_id),
            )
        outcomes.append(outcome)
    return outcomes


def audit(conn: psycopg.Connection) -> list[tuple]:
    """The requests, newest first: id, regulation, how many identifiers, status, when, outcome."""
    return conn.execute(
        "select request_id, regulation, cardinality(identity_hashes), status, requested_at, executed_at, "
        "people_found, (select sum(value::bigint) from jsonb_each_text(rows_removed)), esp_outcome "
        "from ops.privacy_requests order by requested_at desc"
    ).fetchall()
