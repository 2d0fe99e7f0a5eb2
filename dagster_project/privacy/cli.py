"""`sendwise privacy delete|suppress|unsuppress|list|rotate-field-key`: privacy requests, key rotation.

A request is recorded (keyed hashes only) and carried out by the next pipeline run, or at once with
--now. Identifiers are never printed back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dagster_project.privacy import identities, requests


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="privacy_command", required=True)
    for regulation in requests.REGULATIONS:
        command = sub.add_parser(regulation, help=f"{regulation} people (carried out by the next run)")
        command.add_argument("--email", action="append", default=[], help="an email (repeatable)")
        command.add_argument("--phone", action="append", default=[], help="a phone number (repeatable)")
        command.add_argument("--customer-key", action="append", default=[], help="a Sendwise customer_key")
        command.add_argument(
            "--source-id",
            action="append",
            default=[],
            metavar="TYPE:ID",
            help=f"a source record id, TYPE one of {', '.join(identities.SOURCE_ID_TYPES)}",
        )
        command.add_argument(
            "--file", type=Path, help=f"one type:value (or email) a line, at most {requests.MAX_IDENTIFIERS}"
        )
        command.add_argument("--now", action="store_true", help="carry out pending requests now")
    sub.add_parser("list", help="the privacy requests and what was done (the audit)")
    rotate = sub.add_parser(
        "rotate-field-key",
        help="put a new field encryption key first and re-encrypt every stored email/phone ciphertext",
    )
    rotate.add_argument(
        "--resume", action="store_true", help="no new key: finish re-encrypting under the current first key"
    )
    rotate.add_argument(
        "--drop-old-keys",
        action="store_true",
        help="then keep only the new key (old backups become unreadable)",
    )


def collect(args: argparse.Namespace) -> list[str]:
    found = [identities.identity("email", v) for v in args.email]
    found += [identities.identity("phone", v) for v in args.phone]
    found += [identities.identity("customer_key", v) for v in args.customer_key]
    for text in args.source_id:
        kind, _, value = text.partition(":")
        if kind not in identities.SOURCE_ID_TYPES:
            raise identities.IdentifierError(f"--source-id {kind}:...: expected TYPE:ID")
        found.append(identities.identity(kind, value))
    if args.file:
        found += requests.read_identifiers(args.file)
    return found


def run(args: argparse.Namespace) -> int:
    import psycopg

    from dagster_project.warehouse import connection

    url = connection.warehouse_url()
    connection.ensure_schemas(url)
    if args.privacy_command == "rotate-field-key":
        return rotate_field_key(url, resume=args.resume, drop_old_keys=args.drop_old_keys)
    if args.privacy_command == "list":
        with psycopg.connect(connection.libpq_url(url)) as conn:
            for row in requests.audit(conn):
                print(" | ".join("" if v is None else str(v) for v in row))
        return 0
    try:
        found = collect(args)
        with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
            request_id = requests.submit(conn, args.privacy_command, found)
    except (identities.IdentifierError, ValueError, OSError) as error:
        print(f"sendwise privacy {args.privacy_command}: {error}")
        return 2
    print(f"recorded {request_id}: {args.privacy_command} of {len(set(found))} identifiers")
    if args.now:
        from dagster_project.activation.resources import build_client

        for outcome in requests.execute_pending_at(url, build_client):
            print(outcome.summary())
    else:
        print("it is carried out by the next pipeline run (or run again with --now)")
    return 0


def rotate_field_key(url: str, resume: bool, drop_old_keys: bool) -> int:
    """New key first (in the key file, or already first in SENDWISE_FIELD_KEYS), then re-encryption."""
    import psycopg

    from dagster_project.privacy import field_crypto
    from dagster_project.settings import SettingsError
    from dagster_project.warehouse import connection

    try:
        if resume or field_crypto.is_explicit():
            cipher = field_crypto.load_cipher()
        else:
            cipher = field_crypto.add_key()
        with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
            rewritten = field_crypto.rotate_stored(conn, cipher)
        if drop_old_keys:
            field_crypto.drop_old_keys()
    except (SettingsError, field_crypto.FieldDecryptError) as error:
        print(f"sendwise privacy rotate-field-key: {error}")
        return 2
    for place, count in rewritten.items():
        print(f"{place}: {count} re-encrypted")
    kept = "only it kept" if drop_old_keys else f"{len(cipher.keys) - 1} older key(s) kept to read backups"
    print(f"every stored ciphertext is under field key {cipher.fingerprint} ({kept})")
    return 0
