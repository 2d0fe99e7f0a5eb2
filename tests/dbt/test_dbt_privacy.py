"""Privacy requests on the hand-made world: alice (known to the CRM, the shop, the ESP and the web) is
deleted and then found nowhere, neither in the warehouse nor in the ESP sandbox (its Klaviyo and its
Mailchimp side); carol is suppressed, left out of the marts and dropped at load."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from dbt_support import create_raw_tables, dbt_build, new_database, query
from sendwise_hand_world import PEOPLE, load_phase

from dagster_project.activation.client import EspClient, ProfileRecord, RecordOutcome
from dagster_project.activation.mailchimp import subscriber_hash
from dagster_project.activation.resources import build_client
from dagster_project.activation.sandbox import Sandbox
from dagster_project.activation.sync import run_sync
from dagster_project.ingestion import loaders
from dagster_project.privacy import identities, requests
from dagster_project.settings import get_settings

# Everything the world says about alice, in the forms the sources wrote them.
ALICE_TEXT = ["alice@mail.org", "Alice", "Ally"]  # found anywhere inside a text or JSON value
ALICE_IDS = ["crm-1", "esp-1", "a-1", "101"]  # found as a whole value (or a JSON string)
ALICE_PHONE_DIGITS = ["4155550101", "14155550101", "4155550199", "14155550199"]
ALICE_ORDERS = [1001, 1002, 1003]
# Every email and phone the hand world's phase 1 holds (sendwise_hand_world.py), as plaintext.
WORLD_EMAILS = [
    "alice@mail.org",
    "carol@x.com",
    "frank@ex.com",
    "bob@mail.net",
    "test@shop.com",
    "gina@ex.com",
]
WORLD_PHONE_DIGITS = ["4155550101", "4155550199", "5555555555", "2125550107"]
SCHEMAS = ("raw", "staging", "intermediate", "marts", "snapshots", "ml", "activation", "ops", "public")


AUDIENCE = "aud-privacy"


def sandbox_clients(sandbox: Sandbox) -> dict[str, EspClient]:
    """The production clients of both ESP APIs, pointed at the sandbox (which serves both)."""
    base = get_settings().model_copy(update={"esp_base_url": sandbox.url, "esp_api_key": "key-us21"})
    klaviyo, _ = build_client(base.model_copy(update={"esp_provider": "sandbox"}), start_sandbox=False)
    mailchimp_api = {"esp_provider": "mailchimp", "esp_base_url": f"{sandbox.url}/3.0"}
    mailchimp_api["esp_list_id"] = AUDIENCE
    mailchimp, _ = build_client(base.model_copy(update=mailchimp_api))
    mailchimp.poll_interval = 0.001
    return {"klaviyo": klaviyo, "mailchimp": mailchimp}


class BothEsps:
    """Forwards a deletion to the sandbox's Klaviyo and Mailchimp alike (a warehouse forwards to its one
    configured ESP; the test holds both adapters to it), recording what it was asked."""

    name = "sandbox klaviyo + mailchimp"

    def __init__(self, clients: dict[str, EspClient]) -> None:
        self.clients = clients
        self.deleted: list[str] = []

    def delete_profiles(self, emails: list[str]) -> list[RecordOutcome]:
        self.deleted += emails
        return [outcome for client in self.clients.values() for outcome in client.delete_profiles(emails)]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def sync_both(url: str, clients: dict[str, EspClient]) -> None:
    with psycopg.connect(url) as conn:
        run_sync(conn, clients["klaviyo"], "sandbox:sendwise", "sendwise")
        run_sync(conn, clients["mailchimp"], f"mailchimp:{AUDIENCE}", AUDIENCE)


def seed_esp_history(sandbox: Sandbox, clients: dict[str, EspClient], customer_key: str) -> None:
    """What the ESPs learnt about alice by themselves: her profile as their own forms filled it (Klaviyo
    and a Mailchimp audience member), her opens."""
    signup = ProfileRecord(customer_key, "alice@mail.org", "Ally", "Smith", {"signup_form": "crm-1"})
    assert [o.status for o in clients["mailchimp"].upsert_profiles([signup], AUDIENCE)] == ["ok"]
    store = sandbox.store
    with store.lock:
        store.upsert_profile(
            {"email": "alice@mail.org", "first_name": "Ally", "phone_number": "+14155550199",
             "external_id": customer_key, "properties": {"signup_form": "Alice Smith, crm-1"}}
        )  # fmt: skip
        store.add_event("Opened Email", "alice@mail.org", "2026-03-20T19:00:00+00:00", {"$message": "m1"})
        store.save()


def sandbox_hits(sandbox: Sandbox, customer_key: str, esp_ids: set[str]) -> list[str]:
    """Every place of the sandbox's state (in memory and its saved file) holding something of alice's:
    her email, names, phone digits, source ids, customer key, or the ids the ESPs gave her (Klaviyo
    profile ids, her Mailchimp subscriber hash). The sandbox's request log is not state: it is the
    HTTP access log (the deletion request itself names her subscriber hash) and is never saved."""
    store = sandbox.store
    with store.lock:
        places: dict[str, Any] = {
            "profiles": store.profiles,
            "lists": store.lists,
            "import jobs": store.jobs,
            "events": store.events,
            "mailchimp audiences": store.mailchimp.audiences,
            "mailchimp batches": store.mailchimp.batches,
            "saved state": orjson.loads(store.state_file.read_bytes()),
        }
        texts = {place: list(_strings(value)) for place, value in places.items()}
    email = re.compile(r"alice@mail\.org|\bally\b|\balice\b", re.IGNORECASE)
    ids = {*ALICE_IDS, customer_key, *esp_ids}
    found = []
    for place, strings in texts.items():
        n = sum(
            bool(email.search(text)) or text.strip() in ids or customer_key in text
            or any(i in text for i in esp_ids) or re.sub(r"\D", "", text) in ALICE_PHONE_DIGITS
            for text in strings
        )  # fmt: skip
        if n:
            found.append(f"{place}: {n}")
    return found


def _strings(value: Any):
    """Every key and string value inside a JSON-like document."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _strings(inner)
    elif isinstance(value, list | tuple | set):
        for inner in value:
            yield from _strings(inner)
    elif isinstance(value, str):
        yield value


def hits(url: str, customer_key: str) -> list[str]:
    """Every (table, column) of the warehouse holding something of alice's."""
    columns = query(
        url,
        """
        select table_schema, table_name, column_name, data_type from information_schema.columns
        where table_schema = any(%s) order by 1, 2, 3
        """,
        (list(SCHEMAS),),
    )
    found = []
    for c in columns:
        column = f'"{c["table_schema"]}"."{c["table_name"]}"."{c["column_name"]}"'
        name = f'"{c["table_schema"]}"."{c["table_name"]}"'
        if c["data_type"] in ("text", "character varying", "json", "jsonb"):
            value = f'"{c["column_name"]}"::text'
            condition = (
                f"{value} ilike any(%(text)s) or btrim({value}) = any(%(ids)s) or {value} like any(%(json)s)"
                f" or regexp_replace({value}, '\\D', '', 'g') = any(%(phones)s)"
            )
        elif c["data_type"] in ("bigint", "integer") and c["column_name"] in ("customer_id", "order_id"):
            condition = f'"{c["column_name"]}" = any(%(numbers)s)'
        else:
            continue
        params = {
            "text": [f"%{t}%" for t in ALICE_TEXT] + [f"%{customer_key}%"],
            "ids": ALICE_IDS + [customer_key],
            "json": [f'%"{i}"%' for i in ALICE_IDS],
            "phones": ALICE_PHONE_DIGITS,
            "numbers": [101, *ALICE_ORDERS],
        }
        n = query(url, f"select count(*) as n from {name} where {condition}", params)[0]["n"]
        if n:
            found.append(f"{column}: {n}")
    return found


@dataclass
class World:
    url: str
    alice: str
    carol: str
    people_before: int
    hits_before: list[str]
    outcomes: list[requests.Outcome]
    esp: BothEsps
    dbt_target: Path
    sandbox: Sandbox
    esp_ids: set[str]
    sandbox_hits_before: list[str]
    plaintext_before: list[str]
    esp_emails_before: set[str]


@pytest.fixture(scope="module")
def esp_sandbox(tmp_path_factory: pytest.TempPathFactory):
    with Sandbox(tmp_path_factory.mktemp("esp_sandbox"), get_settings().esp_specs_dir) as running:
        yield running


@pytest.fixture(scope="module")
def world(pg_server: str, dbt_target: Path, esp_sandbox: Sandbox) -> World:
    """The hand world synced to both ESPs of the sandbox (which also knows alice by itself), after
    `delete` of alice (by an email spelt differently) and `suppress` of carol (by one of her CRM ids),
    then a `dbt build` (incremental: the marts built before must lose carol too)."""
    url = new_database(pg_server, "privacy")
    create_raw_tables(url)
    load_phase(url, 1)
    dbt_build(url, dbt_target)
    first = BothEsps(sandbox_clients(esp_sandbox))
    sync_both(url, first.clients)
    first.close()
    plaintext_before = plaintext_hits(url)  # at rest: tokens and ciphertexts only, before anything else
    esp_emails_before = {p.get("email") for p in esp_sandbox.store.profiles.values()}
    with psycopg.connect(
        url, autocommit=True
    ) as conn:  # a quarantined record of hers, as the loader keeps it
        conn.execute(
            "insert into ops.quarantine (stream, partition_key, source_location, record, reason, batch_id) "
            "values ('esp_events', '2026-03-01', 'esp/events/2026-03-01.jsonl:7', %s, 'bad timestamp', 'b1')",
            (json.dumps({"event_id": "e99", "email": "alice@mail.org", "timestamp": "yesterday"}),),
        )
    dbt_build(url, dbt_target)
    alice, carol = customer_key_of(url, "crm-1"), customer_key_of(url, "crm-3")
    people_before = query(url, "select count(*) as n from marts.dim_customers")[0]["n"]
    esp = BothEsps(sandbox_clients(esp_sandbox))
    sync_both(url, esp.clients)
    seed_esp_history(esp_sandbox, esp.clients, alice)
    store = esp_sandbox.store
    esp_ids = {pid for pid, p in store.profiles.items() if p.get("email") == "alice@mail.org"}
    esp_ids.add(subscriber_hash("alice@mail.org"))
    sandbox_hits_before = sandbox_hits(esp_sandbox, alice, esp_ids)
    hits_before = hits(url, alice)
    with psycopg.connect(url, autocommit=True) as conn:
        requests.submit(conn, "delete", [identities.parse(" Alice@Mail.org")])
        requests.submit(conn, "suppress", [identities.parse("crm_contact_id:crm-2")])
        outcomes = requests.execute_pending(conn, esp)
    dbt_build(url, dbt_target)
    return World(
        url, alice, carol, people_before, hits_before, outcomes, esp, dbt_target, esp_sandbox, esp_ids,
        sandbox_hits_before, plaintext_before, esp_emails_before,
    )  # fmt: skip


def plaintext_hits(url: str) -> list[str]:
    """Every (table, column) of the warehouse holding a plaintext email or phone of the world: a text or
    JSON value containing one (case-insensitive), or a value whose digits are a phone's."""
    columns = query(
        url,
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema = any(%s) and data_type in ('text', 'character varying', 'json', 'jsonb')",
        (list(SCHEMAS),),
    )
    found = []
    for c in columns:
        if c["table_name"] == "identity_blocklist":  # the seed of placeholder values (555-555-5555), no one's
            continue
        value = f'"{c["column_name"]}"::text'
        n = query(
            url,
            f'select count(*) as n from "{c["table_schema"]}"."{c["table_name"]}" '
            f"where {value} ilike any(%(e)s) or regexp_replace({value}, '\\D', '', 'g') ~ %(p)s",
            {"e": [f"%{e}%" for e in WORLD_EMAILS], "p": "(" + "|".join(WORLD_PHONE_DIGITS) + ")$"},
        )[0]["n"]
        if n:
            found.append(f"{c['table_schema']}.{c['table_name']}.{c['column_name']}: {n}")
    return found


def test_no_plaintext_email_or_phone_is_stored_and_the_esp_still_gets_the_emails(world: World):
    """Field encryption at rest: a dump of the warehouse (every schema, tables and views) holds tokens and
    ciphertexts, no email or phone of the world, while the ESP received the real emails."""
    assert world.plaintext_before == []
    assert {"alice@mail.org", "bob@mail.net", "gina@ex.com"} <= world.esp_emails_before
    rows = query(world.url, "select count(*) as n from marts.dim_customers where email_encrypted is not null")
    assert rows[0]["n"] >= 5


def customer_key_of(url: str, crm_contact_id: str) -> str:
    rows = query(
        url,
        "select customer_key from intermediate.int_identity__record_keys where record_id = %s",
        (crm_contact_id,),
    )
    return rows[0]["customer_key"]


def load_esp_events(url: str, source_dir: Path, day: str, events: list[dict]) -> loaders.LoadResult:
    path = source_dir / "esp" / "events" / f"{day}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with loaders.connect(url) as conn:
        return loaders.load_event_partition(conn, loaders.ESP_EVENTS, source_dir, day)


def esp_event(event_id: str, profile: str, email: str) -> dict:
    return {
        "event_id": event_id,
        "event_type": "open",
        "profile_id": profile,
        "email": email,
        "campaign_id": "camp-m9",
        "message_id": "m9",
        "timestamp": "2026-03-31T10:00:00+00:00",
    }


def test_a_deleted_person_is_found_in_no_table_even_after_a_full_refresh(world: World):
    assert len(world.hits_before) > 20  # the scan does find her where she was
    delete, suppress = world.outcomes
    assert delete.regulation == "delete" and delete.people_found == 1
    assert delete.rows_removed["raw.crm_contacts"] == 1 and delete.rows_removed["raw.shop_orders"] == 3
    assert delete.rows_removed["raw.shop_order_items"] >= 1 and delete.rows_removed["ops.quarantine"] == 1
    assert "intermediate.int_identity__identifiers" in delete.rows_removed  # the memory full refresh keeps
    assert "snapshots.snap_crm__contacts" in delete.rows_removed
    assert world.esp.deleted == ["alice@mail.org"] and delete.esp_outcome == "2 ok"  # Klaviyo, Mailchimp
    assert hits(world.url, world.alice) == []
    audit = query(world.url, "select * from ops.privacy_requests where regulation = 'delete'")
    assert audit[0]["status"] == "done" and audit[0]["rows_removed"]["raw.shop_customers"] == 1
    assert "alice" not in json.dumps(audit, default=str).lower()  # the audit keeps keyed hashes only
    dbt_build(world.url, world.dbt_target, "--full-refresh")
    assert hits(world.url, world.alice) == []
    sync_both(world.url, world.esp.clients)  # the next run's sync does not push her back either
    assert sandbox_hits(world.sandbox, world.alice, world.esp_ids) == []
    others = {p: ids for p, ids in PEOPLE.items() if p != "alice"}
    shop = {r["customer_id"] for r in query(world.url, "select customer_id from raw.shop_customers")}
    assert {i for ids in others.values() for i in ids["shop"]} <= shop  # nobody else lost a record


def test_a_deleted_person_is_found_nowhere_in_the_esp_sandbox(world: World):
    before = dict(hit.split(": ") for hit in world.sandbox_hits_before)
    assert {"profiles", "lists", "events", "mailchimp audiences", "saved state"} <= set(before)  # she was
    assert sandbox_hits(world.sandbox, world.alice, world.esp_ids) == []
    store = world.sandbox.store
    assert store.find_by_email("alice@mail.org") is None
    assert subscriber_hash("alice@mail.org") not in store.mailchimp.audiences.get(AUDIENCE, {})
    assert len(store.profiles) >= 2 and len(store.mailchimp.audiences[AUDIENCE]) >= 1  # others stayed


def test_a_suppressed_person_leaves_the_marts_but_not_the_raw_layer(world: World):
    assert world.outcomes[1].regulation == "suppress" and world.outcomes[1].people_found == 1
    people = query(world.url, "select count(*) as n from marts.dim_customers")[0]["n"]
    assert people == world.people_before - 2  # alice deleted, carol suppressed
    for mart in ("dim_customers", "fct_customer_features", "dim_customers_masked"):
        rows = query(world.url, f"select 1 from marts.{mart} where customer_key = %s", (world.carol,))
        assert rows == [], mart
    assert len(query(world.url, "select 1 from raw.crm_contacts where contact_id in ('crm-2', 'crm-3')")) == 2


def test_new_records_of_suppressed_and_deleted_people_are_dropped_at_load(world: World, tmp_path: Path):
    events = [
        esp_event("e90", "esp-1", "alice@mail.org"),
        esp_event("e91", "esp-3", "carol@x.com"),
        esp_event("e92", "esp-77", "zoe@y.org"),
    ]
    result = load_esp_events(world.url, tmp_path, "2026-03-31", events)
    assert (result.received, result.loaded, result.quarantined, result.suppressed) == (3, 1, 0, 2)
    logged = query(
        world.url,
        "select received, loaded, suppressed from ops.load_log where batch_id = %s",
        (result.batch_id,),
    )
    assert logged == [{"received": 3, "loaded": 1, "suppressed": 2}]
    stored = query(world.url, "select event_id from raw.esp_events where _batch_id = %s", (result.batch_id,))
    assert stored == [{"event_id": "e92"}]
    assert hits(world.url, world.alice) == []

    with psycopg.connect(world.url, autocommit=True) as conn:
        requests.submit(conn, "unsuppress", [identities.parse("carol@x.com")])
        [outcome] = requests.execute_pending(conn)
    assert outcome.people_found == 1
    again = load_esp_events(world.url, tmp_path, "2026-04-01", [esp_event("e93", "esp-3", "carol@x.com")])
    assert (again.loaded, again.suppressed) == (1, 0)
