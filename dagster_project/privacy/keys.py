"""The secret behind Sendwise's keyed hashes (HMAC-SHA256), kept out of reach of analysts and logs.

An unsalted digest of an email lets anyone who can guess the email find the person; an HMAC needs the
key. The key comes from `SENDWISE_HASH_KEY` or, when unset, from `SENDWISE_HOME/secrets/hash_key`
(32 random bytes, hex, generated once, mode 0600). It is installed in the warehouse as the two HMAC pads
in `ops.privacy_keys`, a table only the warehouse user can read (the analyst role has no access to the
ops schema): dbt computes `sha256(outer || sha256(inner || value))` with built-in functions (pgserver's
PostgreSQL ships without pgcrypto), views reading the table run with their owner's rights, and Python
hashes with the same pads, so both sides always agree. The key is never logged or passed to dbt (dbt
writes vars and compiled SQL to target/ and logs/).

Once installed, the warehouse's key wins: hashes already stored (suppressed identities, audit rows,
customer keys) depend on it. A different explicit `SENDWISE_HASH_KEY` is an error, never a silent switch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dagster_project.settings import get_settings

log = logging.getLogger(__name__)

KEY_ENV = "SENDWISE_HASH_KEY"
BLOCK_SIZE = 64  # SHA-256's block size: HMAC pads the key to it

DDL = """
create schema if not exists ops;
create table if not exists ops.privacy_keys (
    name text primary key,
    inner_pad bytea not null,
    outer_pad bytea not null,
    fingerprint text not null,
    installed_at timestamptz not null default now()
);
revoke all on ops.privacy_keys from public;
"""


@dataclass(frozen=True)
class HashKey:
    inner_pad: bytes
    outer_pad: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> HashKey:
        if len(secret) > BLOCK_SIZE:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(BLOCK_SIZE, b"\0")
        return cls(bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded))

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it (a keyed hash of a fixed label)."""
        return self.digest("sendwise-key-fingerprint")[:12]

    def digest(self, value: str) -> str:
        """HMAC-SHA256 of `value` (UTF-8) as hex: equal to `hmac.new(secret, value, sha256)`."""
        inner = hashlib.sha256(self.inner_pad + value.encode()).digest()
        return hashlib.sha256(self.outer_pad + inner).hexdigest()

    def __repr__(self) -> str:  # never print the pads
        return f"HashKey(fingerprint={self.fingerprint})"


def key_file(home: Path | None = None) -> Path:
    return (home or get_settings().home) / "secrets" / "hash_key"


def configured_secret(home: Path | None = None) -> tuple[bytes, bool]:
    """The secret from the environment (explicit=True) or the key file, generated on first use."""
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return explicit.encode(), True
    path = key_file(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.info("generated a hash key in %s", path)
    return path.read_text().strip().encode(), False


def install(conn: psycopg.Connection, home: Path | None = None) -> HashKey:
    """Create ops.privacy_keys and store the configured key unless the warehouse already has one."""
    secret, explicit = configured_secret(home)
    configured = HashKey.from_secret(secret)
    with conn.transaction():
        if conn.execute("select to_regclass('ops.privacy_keys') is null").fetchone()[0]:
            conn.execute("select pg_advisory_xact_lock(hashtext('sendwise.privacy.keys'))")
            conn.execute(DDL)
        conn.execute(
            "insert into ops.privacy_keys (name, inner_pad, outer_pad, fingerprint) "
            "values ('hash', %s, %s, %s) on conflict (name) do nothing",
            (configured.inner_pad, configured.outer_pad, configured.fingerprint),
        )
    installed = load(conn)
    if installed.fingerprint != configured.fingerprint:
        message = (
            f"the warehouse's hash key ({installed.fingerprint}) is not the configured one "
            f"({configured.fingerprint}); stored hashes depend on it, so it is kept"
        )
        if explicit:
            raise RuntimeError(f"{message}: unset {KEY_ENV} or point Sendwise at the warehouse it belongs to")
        log.warning("%s (%s is only the first install's copy)", message, key_file(home))
    return installed


def load(conn: psycopg.Connection) -> HashKey:
    row = conn.execute("select inner_pad, outer_pad from ops.privacy_keys where name = 'hash'").fetchone()
    if row is None:
        raise RuntimeError("no hash key in ops.privacy_keys: run any sendwise command to install it")
    return HashKey(bytes(row[0]), bytes(row[1]))


def sql_keyed_hash(expression: str) -> str:
    """SQL for the keyed hash of a text expression (as dbt's keyed_hash macro); null stays null."""
    pad = "(select {} from ops.privacy_keys where name = 'hash')"
    return (
        f"encode(sha256({pad.format('outer_pad')} || sha256({pad.format('inner_pad')} || "
        f"convert_to({expression}, 'UTF8'))), 'hex')"
    )
