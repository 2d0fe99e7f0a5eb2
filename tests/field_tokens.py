"""Test helper: what the warehouse stores for a plaintext email or phone, and back (ingestion/protection.py).

The warehouse holds tokens (keyed hashes of the normalised value) and ciphertexts, never the plaintext;
tests that write raw rows by hand go through `protect_rows`, and tests that compare marts with the emails
they wrote compare `email_token(url, "anna@x.io")` or `decrypt(...)` of the stored ciphertext.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from dagster_project.ingestion import protection
from dagster_project.privacy import field_crypto, keys, normalize
from dagster_project.warehouse import connection


def hash_key(url: str) -> keys.HashKey:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        return keys.install(conn)


def row_protector(url: str) -> protection.RowProtector:
    return protection.RowProtector(field_crypto.FieldProtector(hash_key(url), field_crypto.load_cipher()))


def email_token(url: str, email: str | None) -> str | None:
    """The token a loader stores for this email (normalised first, as the loaders do)."""
    normalised = normalize.normalize_email(email)
    return None if normalised is None else hash_key(url).digest(normalised)


def phone_token(url: str, phone: str | None) -> str | None:
    e164 = normalize.phone_e164(phone)
    return None if e164 is None else hash_key(url).digest(e164)


def decrypt(ciphertext: str | None) -> str | None:
    return field_crypto.load_cipher().decrypt(ciphertext)


def protect_rows(url: str, table: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Raw rows as the loaders store them: emails and phones tokenised, encrypted, with their facts."""
    protector = row_protector(url)
    return [protector.record(table, dict(row)) for row in rows]


def _is_token(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def plaintexts(url: str) -> dict[str, str]:
    """token -> plaintext of every email and phone the warehouse has seen (decrypted in the test)."""
    with psycopg.connect(connection.libpq_url(url)) as conn:
        if conn.execute(
            "select to_regclass('intermediate.int_identity__protected_values') is null"
        ).fetchone()[0]:
            return {}
        rows = conn.execute(
            "select identifier_value, value_encrypted from intermediate.int_identity__protected_values"
        ).fetchall()
    cipher = field_crypto.load_cipher()
    return {token: cipher.decrypt(ciphertext) for token, ciphertext in rows}


def _is_ciphertext(value: object) -> bool:
    return isinstance(value, str) and value.startswith("gAAAAA")  # a Fernet token's version byte and time


def reveal(url: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Query results with every email/phone token and ciphertext replaced by its plaintext, as an operator
    holding the keys would read them (tests compare the marts with the plaintexts they wrote)."""
    if not any(_is_token(value) or _is_ciphertext(value) for row in rows for value in row.values()):
        return rows
    known, cipher = plaintexts(url), field_crypto.load_cipher()

    def shown(value: Any) -> Any:
        if _is_token(value):
            return known.get(value, value)
        return cipher.decrypt(value) if _is_ciphertext(value) else value

    return [{column: shown(value) for column, value in row.items()} for row in rows]
