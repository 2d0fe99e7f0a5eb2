"""Emails and phones never land in plaintext: each loader path stores tokens, ciphertexts and facts
(ingestion/protection.py), and a warehouse loaded before field encryption is converted once, in place."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import psycopg
from ingestion_helpers import contact, esp_event, web_event, write_crm_export, write_events

from dagster_project.ingestion import loaders, upserts
from dagster_project.ingestion.sources import SHOP_TABLES
from dagster_project.privacy import field_crypto, keys
from dagster_project.warehouse import connection

DAY = "2025-01-02"
PLAINTEXTS = ("ann.lee@example.org", "web.person@example.net", "esp.person@example.com", "4155550101")


def token(value: str) -> str:
    secret, _ = keys.configured_secret()
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def dump(url: str) -> str:
    """Every raw row and quarantine entry as text (what a pg_dump of them would show)."""
    with psycopg.connect(connection.libpq_url(url)) as conn:
        tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'raw'")]
        texts = [str(conn.execute(f"select array_agg(t::text) from raw.{t} t").fetchone()[0]) for t in tables]
    return "\n".join(texts).lower()


def test_every_loader_path_stores_tokens_and_ciphertexts_only(
    warehouse_url: str, shop_url: str, tmp_path: Path
):
    with psycopg.connect(connection.libpq_url(shop_url), autocommit=True) as conn:
        conn.execute(
            "create schema shop; create table shop.customers (customer_id bigint primary key, email text, "
            "first_name text, last_name text, phone text, accepts_marketing boolean, created_at timestamptz, "
            "updated_at timestamptz)"
        )
        conn.execute(
            "insert into shop.customers values (1, ' Ann.Lee@Example.ORG ', 'Ann', 'Lee', '(415) 555-0101', "
            "true, '2025-01-01', '2025-01-01')"
        )
    write_crm_export(
        tmp_path, "2025-01-02", [[contact(1, email="ANN.LEE@example.org", phone="+1 415 555 0101")]]
    )
    traits = {"email": "Web.Person@Example.NET", "plan": "pro"}
    write_events(
        tmp_path,
        DAY,
        web=[web_event("w1", DAY, type="identify", traits=traits)],
        esp=[esp_event("e1", DAY, email="esp.person@example.com")],
    )
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        assert upserts.load_shop_table(conn, shop_url, SHOP_TABLES["customers"]).written == 1
        assert upserts.load_crm_contacts(conn, tmp_path).written == 1
        for stream in loaders.EVENT_STREAMS.values():
            assert loaders.load_event_partition(conn, stream, tmp_path, DAY).loaded == 1
        cipher = field_crypto.load_cipher()
        shop = conn.execute(
            "select email, email_encrypted, phone, phone_encrypted, email_facts from raw.shop_customers"
        ).fetchone()
        crm = conn.execute("select email, phone, phone_facts from raw.crm_contacts").fetchone()
        web = conn.execute("select traits from raw.web_events").fetchone()[0]
        esp = conn.execute("select email, email_encrypted from raw.esp_events").fetchone()
    assert (
        shop[0] == crm[0] == token("ann.lee@example.org") and cipher.decrypt(shop[1]) == "ann.lee@example.org"
    )
    assert shop[2] == crm[1] == token("+14155550101") and cipher.decrypt(shop[3]) == "+14155550101"
    assert shop[4]["valid"] is True and shop[4]["masked"] == "a***@example.org"
    assert crm[2]["international"] is True and crm[2]["national_numbers"][0] == token("4155550101")
    assert web["email"] == token("web.person@example.net") and web["plan"] == "pro"
    assert cipher.decrypt(web["email_encrypted"]) == "web.person@example.net"
    assert esp[0] == token("esp.person@example.com") and cipher.decrypt(esp[1]) == "esp.person@example.com"
    text = dump(warehouse_url)
    assert not [p for p in PLAINTEXTS if p in text]


def test_a_warehouse_loaded_before_field_encryption_is_converted_once(warehouse_url: str):
    with psycopg.connect(connection.libpq_url(warehouse_url), autocommit=True) as conn:
        conn.execute("create schema if not exists raw")
        conn.execute(  # the raw tables as they were: plaintext, no *_encrypted / *_facts columns
            "create table raw.crm_contacts (contact_id text primary key, email text, first_name text, "
            "last_name text, phone text, lifecycle_stage text, email_opt_in boolean, timezone text, "
            "created_at timestamptz, updated_at timestamptz, _source_file text, "
            "_loaded_at timestamptz not null default now(), _batch_id text)"
        )
        conn.execute(
            "insert into raw.crm_contacts (contact_id, email, phone) values ('crm-1', ' Ann@Example.org', "
            "'(415) 555-0101'), ('crm-2', null, null)"
        )
        conn.execute(
            "create table raw.web_events (message_id text, traits jsonb, _file_date date not null, "
            "_loaded_at timestamptz not null default now())"
        )
        conn.execute(
            "insert into raw.web_events (message_id, traits, _file_date) values ('w1', %s, '2025-01-02'), "
            "('w2', '{}', '2025-01-02')",
            ('{"email": "web@x.io", "plan": "pro"}',),
        )
    with loaders.connect(warehouse_url) as conn:
        first = loaders.ensure_tables(conn)
        again = loaders.ensure_tables(conn)  # converted once: a later load neither converts nor rescans
        cipher = field_crypto.load_cipher()
        rows = conn.execute(
            "select contact_id, email, email_encrypted, phone, phone_encrypted "
            "from raw.crm_contacts order by 1"
        ).fetchall()
        traits = dict(conn.execute("select message_id, traits from raw.web_events").fetchall())
    assert rows[0][1] == token("ann@example.org") and cipher.decrypt(rows[0][2]) == "ann@example.org"
    assert rows[0][3] == token("+14155550101") and cipher.decrypt(rows[0][4]) == "+14155550101"
    assert rows[1][1:] == (None, None, None, None)
    assert (
        traits["w1"]["email"] == token("web@x.io")
        and cipher.decrypt(traits["w1"]["email_encrypted"]) == "web@x.io"
    )
    assert traits["w2"] == {}
    assert first == {"crm_contacts": 2, "web_events": 1} and again == {}  # every crm row rewritten
    assert "ann@example.org" not in dump(warehouse_url) and "web@x.io" not in dump(warehouse_url)
