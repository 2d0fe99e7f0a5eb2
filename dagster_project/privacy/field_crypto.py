"""Field encryption of emails and phones: Fernet keys, keyed tokens, and key rotation.

A stored email or phone is two things: a token (the keyed hash of the normalised value, see keys.py),
deterministic so that SQL can match, join and count on it, and a Fernet ciphertext (AES-128-CBC +
HMAC-SHA256, from the `cryptography` package) that only Python holding the field key can read back, for
the few places that need the plaintext (the ESP request). PostgreSQL never sees the field key: the
embedded server has no pgcrypto, and dbt must not (it writes vars and compiled SQL to disk).

Keys: `SENDWISE_FIELD_KEYS` (comma-separated Fernet keys) or, when unset,
`SENDWISE_HOME/secrets/field_keys` (one key a line, generated once, mode 0600). The first key
encrypts, every key decrypts (MultiFernet), which is what makes rotation possible: put a new key first,
re-encrypt every stored ciphertext (`rotate_stored`), then drop the old keys. Keys are never logged;
a fingerprint (a hash of the first key) names them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from psycopg import sql

from dagster_project.privacy import keys, normalize
from dagster_project.settings import SettingsError, get_settings

log = logging.getLogger(__name__)

KEYS_ENV = "SENDWISE_FIELD_KEYS"
CIPHERTEXT_SUFFIX = "_encrypted"  # a text column named *_encrypted holds Fernet ciphertexts
SCANNED_SCHEMAS_EXCLUDED = ("pg_catalog", "information_schema", "pg_toast")
# Ciphertexts inside JSON (schema, table, jsonb column, key): the web events' identify traits.
JSON_CIPHERTEXTS = (("raw", "web_events", "traits", "email_encrypted"),)


class FieldDecryptError(ValueError):
    """A ciphertext none of the configured field keys opens (wrong home, or a key dropped too early)."""


@dataclass(frozen=True)
class FieldCipher:
    """MultiFernet over the configured keys: the first encrypts, all decrypt."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a FieldCipher needs at least one key")

    @property
    def _fernets(self) -> list[Fernet]:
        return [Fernet(key) for key in self.keys]

    @property
    def fingerprint(self) -> str:
        """Names the encrypting key without revealing it."""
        return hashlib.sha256(b"sendwise-field-key:" + self.keys[0]).hexdigest()[:12]

    def encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._fernets[0].encrypt(value.encode()).decode()

    def decrypt(self, ciphertext: str | None) -> str | None:
        if ciphertext is None:
            return None
        try:
            return MultiFernet(self._fernets).decrypt(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise FieldDecryptError(
                f"a stored ciphertext opens with none of the {len(self.keys)} field keys "
                f"(first {self.fingerprint}): see {KEYS_ENV}"
            ) from error

    def is_current(self, ciphertext: str) -> bool:
        """True when the encrypting key already opens it (rotation has nothing to do)."""
        try:
            self._fernets[0].decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """The ciphertext under the first key (unchanged when it already is)."""
        if self.is_current(ciphertext):
            return ciphertext
        try:
            return MultiFernet(self._fernets).rotate(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise FieldDecryptError(
                f"a stored ciphertext opens with none of the {len(self.keys)} field keys: "
                "rotation stops, nothing of that table changed"
            ) from error

    def __repr__(self) -> str:  # never print the keys
        return f"FieldCipher(fingerprint={self.fingerprint}, keys={len(self.keys)})"


def key_file(home: Path | None = None) -> Path:
    return (home or get_settings().home) / "secrets" / "field_keys"


def parse_keys(text: str, setting: str, separator: str) -> tuple[bytes, ...]:
    """Fernet keys from a setting's text; a malformed one is a SettingsError naming the setting."""
    keys = tuple(part.strip().encode() for part in text.split(separator) if part.strip())
    if not keys:
        raise SettingsError(setting, "no Fernet key in it")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                setting, f"key {number} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _write_keys(path: Path, keys: Iterable[bytes]) -> None:
    """Replace the key file atomically (a crash leaves the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("".join(key.decode() + "\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def is_explicit() -> bool:
    return bool(os.environ.get(KEYS_ENV, "").strip())


def configured_keys(home: Path | None = None) -> tuple[tuple[bytes, ...], bool]:
    """The keys from the environment (explicit=True) or the key file, generated on first use."""
    if is_explicit():
        return parse_keys(os.environ[KEYS_ENV], KEYS_ENV, ","), True
    path = key_file(home)
    if not path.exists():
        _write_keys(path, [Fernet.generate_key()])
        log.info("generated a field encryption key in %s", path)
    return parse_keys(path.read_text(), str(path), "\n"), False


def load_cipher(home: Path | None = None) -> FieldCipher:
    keys, _ = configured_keys(home)
    return FieldCipher(keys)


def add_key(home: Path | None = None) -> FieldCipher:
    """Put a new key first in the key file (the old ones stay, to decrypt until rotation is done)."""
    keys, explicit = configured_keys(home)
    if explicit:
        raise SettingsError(
            KEYS_ENV,
            "set: put a new key first in it yourself (python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'), keep the old ones after it, then rotate again",
        )
    new = (Fernet.generate_key(), *keys)
    _write_keys(key_file(home), new)
    return FieldCipher(new)


def drop_old_keys(home: Path | None = None) -> FieldCipher:
    """Keep only the first key in the key file (after `rotate_stored` re-encrypted everything)."""
    keys, explicit = configured_keys(home)
    if explicit:
        raise SettingsError(KEYS_ENV, "set: remove the old keys from it yourself")
    _write_keys(key_file(home), keys[:1])
    return FieldCipher(keys[:1])


# --- rotation of what the warehouse stores ----------------------------------------------------------


@dataclass(frozen=True)
class Ciphertexts:
    """Where ciphertexts are stored: a text column, or a key inside a jsonb column."""

    schema: str
    table: str
    column: str
    json_key: str | None = None

    @property
    def name(self) -> str:
        suffix = f"->'{self.json_key}'" if self.json_key else ""
        return f"{self.schema}.{self.table}.{self.column}{suffix}"


def stored_ciphertexts(conn: psycopg.Connection) -> list[Ciphertexts]:
    """Every table column named *_encrypted (views excluded: they store nothing), and JSON_CIPHERTEXTS."""
    rows = conn.execute(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns as c "
        "join information_schema.tables as t using (table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and c.column_name like %s and c.data_type = 'text' "
        "and c.table_schema <> all(%s) order by 1, 2, 3",
        ("%" + CIPHERTEXT_SUFFIX, list(SCANNED_SCHEMAS_EXCLUDED)),
    ).fetchall()
    found = [Ciphertexts(*row) for row in rows]
    for schema, table, column, key in JSON_CIPHERTEXTS:
        exists = conn.execute(
            "select from information_schema.columns where table_schema = %s and table_name = %s "
            "and column_name = %s and data_type = 'jsonb'",
            (schema, table, column),
        ).fetchone()
        if exists is not None:
            found.append(Ciphertexts(schema, table, column, key))
    return found


def rotate_stored(conn: psycopg.Connection, cipher: FieldCipher) -> dict[str, int]:
    """Re-encrypt every stored ciphertext under the cipher's first key: rewritten values per place.

    One transaction per place, so a crash leaves each place all old or all new; ciphertexts already
    under the first key are left alone, so a rerun after a crash only does what is left (idempotent).
    """
    rewritten: dict[str, int] = {}
    for place in stored_ciphertexts(conn):
        with conn.transaction():
            rewritten[place.name] = _rotate_place(conn, cipher, place)
        log.info("field key %s: %s rewritten in %s", cipher.fingerprint, rewritten[place.name], place.name)
    return rewritten


def _rotate_place(conn: psycopg.Connection, cipher: FieldCipher, place: Ciphertexts) -> int:
    table = sql.Identifier(place.schema, place.table)
    column = sql.Identifier(place.column)
    value = sql.SQL("{} ->> {}").format(column, sql.Literal(place.json_key)) if place.json_key else column
    conn.execute(sql.SQL("lock table {} in share row exclusive mode").format(table))
    old = [
        row[0]
        for row in conn.execute(
            sql.SQL("select distinct {value} from {table} where {value} is not null").format(
                value=value, table=table
            )
        )
    ]
    changes = [(text, rotated) for text in old if (rotated := cipher.rotate(text)) != text]
    if not changes:
        return 0
    conn.execute("create temporary table _field_rotation (old text primary key, new text) on commit drop")
    with conn.cursor().copy("copy _field_rotation (old, new) from stdin") as copy:
        for change in changes:
            copy.write_row(change)
    new_value = (
        sql.SQL("jsonb_set({}, {}, to_jsonb(r.new))").format(column, sql.Literal([place.json_key]))
        if place.json_key
        else sql.SQL("r.new")
    )
    cursor = conn.execute(
        sql.SQL(
            "update {table} as t set {column} = {new} from _field_rotation as r where t.{value} = r.old"
        ).format(
            table=table,
            column=column,
            new=new_value,
            value=value
            if not place.json_key
            else sql.SQL("{} ->> {}").format(column, sql.Literal(place.json_key)),
        )
    )
    return cursor.rowcount


# --- what a loader stores instead of a plaintext email or phone ------------------------------------


@dataclass(frozen=True)
class ProtectedEmail:
    """An email as stored: its token and ciphertext, plus what SQL can no longer compute from them."""

    token: str | None  # keyed hash of the normalised email: dbt matches on it
    ciphertext: str | None  # Fernet of the normalised email: the ESP sync decrypts it
    is_valid: bool
    is_placeholder: bool
    has_at: bool
    without_at_token: str | None  # a valid email's token without its "@" (int_identity repairs)
    without_tld_token: str | None  # ... and without its top-level domain
    value: str | None = field(repr=False)  # the normalised email, in memory only (facts derive from it)


@dataclass(frozen=True)
class ProtectedPhone:
    token: str | None  # keyed hash of the E.164 number
    ciphertext: str | None
    placeholder_reason: str | None
    is_international: bool  # written with its calling code ("+" or "00")
    national_token: str | None  # a bare 10-digit national number's token (completion by evidence)
    national_number_tokens: tuple[str, ...]  # an international number without 1, 2, 3 code digits
    value: str | None = field(repr=False)  # the E.164 number, in memory only


@dataclass(frozen=True)
class FieldProtector:
    """Tokens (keyed hashes, keys.HashKey) and ciphertexts (FieldCipher) for emails and phones."""

    hash_key: keys.HashKey
    cipher: FieldCipher

    def token(self, value: str | None) -> str | None:
        return None if value is None else self.hash_key.digest(value)

    def protect_email(self, raw: str | None) -> ProtectedEmail:
        email = normalize.normalize_email(raw)
        valid = normalize.is_valid_email(email)
        return ProtectedEmail(
            token=self.token(email),
            ciphertext=self.cipher.encrypt(email),
            is_valid=valid,
            is_placeholder=normalize.is_placeholder_email(email),
            has_at=email is not None and "@" in email,
            without_at_token=self.token(email.replace("@", "")) if valid and email else None,
            without_tld_token=self.token(re.sub(r"\.[a-z]{2,}\Z", "", email)) if valid and email else None,
            value=email,
        )

    def protect_phone(self, raw: str | None) -> ProtectedPhone:
        phone = normalize.phone_e164(raw)
        international = normalize.is_international_phone(raw)
        digits = normalize.phone_digits(raw)
        return ProtectedPhone(
            token=self.token(phone),
            ciphertext=self.cipher.encrypt(phone),
            placeholder_reason=normalize.phone_placeholder_reason(phone),
            is_international=international,
            national_token=self.token(digits) if phone and not international and len(digits) == 10 else None,
            national_number_tokens=(
                tuple(self.hash_key.digest(phone[1 + k :]) for k in (1, 2, 3))
                if phone and international
                else ()
            ),
            value=phone,
        )


def protector(conn: psycopg.Connection, home: Path | None = None) -> FieldProtector:
    """The warehouse's hash key (installed if missing) and the configured field keys."""
    return FieldProtector(keys.install(conn, home), load_cipher(home))
