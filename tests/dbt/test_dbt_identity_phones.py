"""Identity: a phone written without a country code links to the one fully-qualified number in the data
that is the same national number behind another calling code (var identity_complete_national_phones), and
never when that is ambiguous or when only names agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from conftest import create_raw_tables, dbt_build, load_raw, new_database, query
from sendwise_hand_world import _crm, _shop, t

CREATED, UPDATED = t("2026-03-01"), t("2026-03-02")

SHOP = [
    # A UK customer typed their number without the +44 (staging guesses +1 for 10 digits).
    _shop(301, "nora@mail.org", "Nora", "Quinn", "695 894 2644", True, CREATED, UPDATED),
    # A bare number that two different fully-qualified numbers could be: ambiguous, stays alone.
    _shop(302, "sam.lee@mail.org", "Sam", "Lee", "7175190600", True, CREATED, UPDATED),
    # Same name as CRM contact crm-304, nothing else in common: two people.
    _shop(304, "sam.lee1980@mail.org", "Sam", "Lee", None, True, CREATED, UPDATED),
]
CRM = [
    _crm("crm-301", None, "Nora", "Quinn", "+44 6958942644", True, "Europe/London", CREATED, UPDATED),
    _crm("crm-302", None, "Sam", "Lee", "+44 7175190600", True, "Europe/London", CREATED, UPDATED),
    _crm("crm-303", None, "Ines", "Roux", "+33 7175190600", True, "Europe/Paris", CREATED, UPDATED),
    _crm("crm-304", "slee@work.example.com", "Sam", "Lee", None, True, None, CREATED, UPDATED),
]


def record_keys(url: str) -> dict[str, str]:
    rows = query(url, "select record_id, customer_key from intermediate.int_identity__record_keys")
    return {row["record_id"]: row["customer_key"] for row in rows}


def new_phones_world(pg_server: str) -> str:
    url = new_database(pg_server, "dbt_phones")
    create_raw_tables(url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        # only the identity models are built; the on-run-end grant hook expects the marts schema
        cur.execute("create schema if not exists marts")
    conn.close()
    load_raw(url, "shop_customers", SHOP)
    load_raw(url, "crm_contacts", CRM)
    return url


@pytest.fixture(scope="module")
def phones_world(pg_server: str) -> Iterator[str]:
    yield new_phones_world(pg_server)


def build_identity(url: str, target: Path, *extra: str) -> dict[str, str]:
    selection = ("--select", "+int_identity__record_keys", "--indirect-selection", "cautious")
    dbt_build(url, target, *selection, *extra)
    return record_keys(url)


def test_bare_national_number_links_to_the_one_international_number(phones_world, tmp_path):
    keys = build_identity(phones_world, tmp_path)
    assert keys["301"] == keys["crm-301"]
    phones = query(
        phones_world,
        "select identifier_value from intermediate.int_identity__observations "
        "where record_id = '301' and identifier_type = 'phone' order by 1",
    )
    assert [row["identifier_value"] for row in phones] == ["+16958942644", "+446958942644"]


def test_ambiguous_numbers_and_shared_names_do_not_merge(phones_world, tmp_path):
    keys = build_identity(phones_world, tmp_path)
    # 7175190600 could be the UK or the French number: none of the three records merges.
    assert len({keys["302"], keys["crm-302"], keys["crm-303"]}) == 3
    # Two Sam Lees with nothing but the name in common stay two people.
    assert keys["304"] != keys["crm-304"]
    assert keys["302"] not in (keys["304"], keys["crm-304"])


def test_the_rule_can_be_switched_off(pg_server, tmp_path):
    # a database of its own: key stability would otherwise carry the earlier build's merged key over
    url = new_phones_world(pg_server)
    keys = build_identity(url, tmp_path, "--vars", "{identity_complete_national_phones: false}")
    assert keys["301"] != keys["crm-301"]
