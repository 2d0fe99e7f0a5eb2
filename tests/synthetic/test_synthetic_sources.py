"""The sources a small world writes have the contract's shapes, agree with the ground truth, and are messy."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pytest
from synthetic_helpers import START, make_world, new_database

from dagster_project.synthetic.traits import ARCHETYPES, TEST_ACCOUNT, TIMEZONES

DAYS = 8
WEB_TYPES = {"page", "track", "identify"}
TRACK_EVENTS = {"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Signed In"}
ESP_TYPES = {"sent", "delivered", "open", "click", "bounce", "unsubscribe", "spam_complaint"}
CONTACT_KEYS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "lifecycle_stage",
    "email_opt_in",
    "timezone",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("world")
    shop_url = new_database(pg_server)
    make_world(out, shop_url, customers=600, days=DAYS)
    return out, shop_url


def _events(folder: Path) -> dict[str, list[dict]]:
    return {
        path.stem: [orjson.loads(line) for line in path.read_bytes().splitlines()]
        for path in sorted(folder.glob("*.jsonl"))
    }


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.utcoffset() is not None, f"timestamp without offset: {text}"
    return value


@pytest.fixture(scope="module")
def web(world):
    return _events(world[0] / "web" / "events")


@pytest.fixture(scope="module")
def esp(world):
    return _events(world[0] / "esp" / "events")


@pytest.fixture(scope="module")
def crm(world):
    exports = {}
    for folder in sorted((world[0] / "crm" / "contacts").iterdir()):
        exports[folder.name] = [json.loads(page.read_text()) for page in sorted(folder.glob("page-*.json"))]
    return exports


@pytest.fixture(scope="module")
def people(world):
    with (world[0] / "ground_truth" / "people.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def shop(world):
    with psycopg.connect(world[1]) as conn:
        return {
            table: [dict(zip([c.name for c in cur.description], row, strict=True)) for row in cur.fetchall()]
            for table in ("customers", "products", "orders", "order_items")
            for cur in [conn.execute(f"select * from shop.{table}")]
        }


def test_one_file_per_day_for_each_stream(web, esp, crm):
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    assert list(web) == days
    assert list(esp) == days
    assert list(crm) == days


def test_web_events_have_the_segment_shape(web):
    for events in web.values():
        for event in events:
            assert event["type"] in WEB_TYPES
            assert isinstance(event["messageId"], str) and isinstance(event["anonymousId"], str)
            assert event["userId"] is None or event["userId"].isdigit()
            assert _timestamp(event["receivedAt"]) >= _timestamp(event["timestamp"])
            assert {"userAgent", "ip", "page", "timezone"} <= event["context"].keys()
            if event["type"] == "track":
                assert event["event"] in TRACK_EVENTS
            if event["type"] == "page":
                assert {"path", "url", "title", "referrer"} <= event["properties"].keys()
            if event["type"] == "identify":
                assert event["userId"] and {"email", "first_name", "last_name"} <= event["traits"].keys()
            if event.get("event") == "Product Viewed":
                assert {"product_id", "category", "price"} <= event["properties"].keys()
            if event.get("event") == "Order Completed":
                assert event["properties"]["order_id"].isdigit() and event["properties"]["revenue"] > 0


def test_esp_events_have_the_contract_shape(esp):
    for events in esp.values():
        for event in events:
            assert event["event_type"] in ESP_TYPES
            assert event["profile_id"].startswith("esp-")
            for key in ("event_id", "email", "campaign_id", "message_id"):
                assert isinstance(event[key], str) and event[key]
            _timestamp(event["timestamp"])
            if event["event_type"] in ("open", "click"):
                assert event["user_agent"] and event["ip"]
            if event["event_type"] == "click":
                assert event["url"].startswith("https://")
            if event["event_type"] == "bounce":
                assert event["bounce_type"] in ("hard", "soft")


def test_crm_export_is_full_first_then_deltas(crm, people):
    first, *later = crm.values()
    for pages in crm.values():
        assert [page["page"] for page in pages] == list(range(1, len(pages) + 1))
        assert {page["total_pages"] for page in pages} == {len(pages)}
        assert len({page["export_id"] for page in pages}) == 1
        for page in pages:
            _timestamp(page["exported_at"])
            for contact in page["results"]:
                assert contact.keys() == CONTACT_KEYS
                assert contact["id"].startswith("crm-")
                assert contact["lifecycle_stage"] in ("subscriber", "lead", "customer", "churned")
                assert isinstance(contact["email_opt_in"], bool)
                assert contact["timezone"] is None or contact["timezone"] in TIMEZONES
                assert _timestamp(contact["updated_at"]) >= _timestamp(contact["created_at"])
                assert _timestamp(contact["updated_at"]) <= _timestamp(page["exported_at"])
    full = sum(len(page["results"]) for page in first)
    deltas = [sum(len(page["results"]) for page in pages) for pages in later]
    assert full > 5 * max(deltas) > 0
    assert "full" in first[0]["export_id"] and all("delta" in pages[0]["export_id"] for pages in later)


def test_shop_tables_follow_the_contract(shop):
    assert {o["status"] for o in shop["orders"]} == {"completed", "cancelled", "refunded"}
    order_ids = {o["order_id"] for o in shop["orders"]}
    product_ids = {p["product_id"] for p in shop["products"]}
    customer_ids = {c["customer_id"] for c in shop["customers"]}
    assert {i["order_id"] for i in shop["order_items"]} == order_ids
    assert {i["product_id"] for i in shop["order_items"]} <= product_ids
    assert {o["customer_id"] for o in shop["orders"]} <= customer_ids
    for table in shop.values():
        assert all(row["updated_at"] >= row["created_at"] for row in table)
    # order totals are the sum of their items
    totals = collections.Counter()
    for item in shop["order_items"]:
        totals[item["order_id"]] += item["quantity"] * item["unit_price"]
    assert all(totals[o["order_id"]] == o["order_total"] for o in shop["orders"])


def test_ground_truth_lists_identifiers_that_exist_in_the_sources(people, shop, crm, web, esp):
    customer_ids = {str(c["customer_id"]) for c in shop["customers"]}
    contact_ids = {c["id"] for pages in crm.values() for page in pages for c in page["results"]}
    profile_ids = {e["profile_id"] for events in esp.values() for e in events}
    user_ids = {e["userId"] for events in web.values() for e in events if e["userId"]}
    anonymous_ids = {e["anonymousId"] for events in web.values() for e in events}
    assert {p["archetype"] for p in people} == {*ARCHETYPES, TEST_ACCOUNT}
    for person in people:
        assert 0 <= int(person["preferred_hour_of_week_local"]) <= 167
        assert person["timezone"] in TIMEZONES
        assert not person["shop_customer_id"] or person["shop_customer_id"] in customer_ids
        assert not person["esp_profile_id"] or person["esp_profile_id"] in profile_ids
        assert not person["web_user_id"] or person["web_user_id"] in user_ids
        for contact in filter(None, person["crm_contact_ids"].split(";")):
            assert contact in contact_ids
        for anonymous_id in filter(None, person["anonymous_ids"].split(";")):
            assert anonymous_id in anonymous_ids
    # and the other way round: every source identifier belongs to someone (bots aside)
    assert customer_ids == {p["shop_customer_id"] for p in people if p["shop_customer_id"]}
    assert contact_ids == {c for p in people for c in p["crm_contact_ids"].split(";") if c}
    assert profile_ids == {p["esp_profile_id"] for p in people if p["esp_profile_id"]}
    known = {a for p in people for a in p["anonymous_ids"].split(";") if a}
    assert {a for a in anonymous_ids if not a.startswith("bot-")} == known
    email_only = [p for p in people if p["archetype"] == "email_only"]
    assert email_only and not any(p["shop_customer_id"] for p in email_only)


def test_the_world_is_messy(people, shop, crm, web, esp):
    all_web = [e for events in web.values() for e in events]
    all_esp = [e for events in esp.values() for e in events]
    # duplicates (same id twice) in both event streams
    assert max(collections.Counter(e["messageId"] for e in all_web).values()) >= 2
    assert max(collections.Counter(e["event_id"] for e in all_esp).values()) >= 2
    # late events: in a file dated after the event's own day
    late = [e for day, events in web.items() for e in events if e["timestamp"][:10] < day]
    assert late
    # bots browse anonymously
    bots = [e for e in all_web if "bot" in e["context"]["userAgent"].lower()]
    assert bots and all(e["userId"] is None for e in bots)
    # machine opens: seconds after delivery, or through a proxy user agent
    delivered = {
        e["message_id"]: _timestamp(e["timestamp"]) for e in all_esp if e["event_type"] == "delivered"
    }
    # (a delivery that arrives late may still be pending at the world's end)
    opens = [e for e in all_esp if e["event_type"] == "open" and e["message_id"] in delivered]
    quick = [
        e for e in opens if (_timestamp(e["timestamp"]) - delivered[e["message_id"]]).total_seconds() <= 10
    ]
    assert 0.1 < len(quick) / len(opens) < 0.9
    assert any("GoogleImageProxy" in e["user_agent"] for e in opens)
    assert {"hard", "soft"} == {e["bounce_type"] for e in all_esp if e["event_type"] == "bounce"}
    assert any(e["event_type"] == "unsubscribe" for e in all_esp)
    # emails that differ only by case/whitespace across sources
    canonical = {p["shop_customer_id"]: p["canonical_email"] for p in people if p["shop_customer_id"]}
    shop_emails = {str(c["customer_id"]): c["email"] for c in shop["customers"]}
    variants = [
        cid
        for cid, email in shop_emails.items()
        if email and email != canonical[cid] and email.strip().lower() == canonical[cid]
    ]
    assert len(variants) > 0.1 * len(shop_emails)
    # the same person twice in the CRM, and shared test / placeholder values in the shop
    assert any(len(p["crm_contact_ids"].split(";")) == 2 for p in people)
    emails = collections.Counter((c["email"] or "").strip().lower() for c in shop["customers"])
    assert emails["test@example.com"] >= 2
    phones = collections.Counter(c["phone"] for c in shop["customers"])
    assert phones["0000000000"] >= 5
    assert any(c["phone"] is None for c in shop["customers"])
    assert any("@" not in (c["email"] or "@") or "@@" in (c["email"] or "") for c in shop["customers"])


def test_real_opens_concentrate_around_the_preferred_hour(people, esp):
    by_profile = {p["esp_profile_id"]: p for p in people if p["esp_profile_id"]}
    all_esp = [e for events in esp.values() for e in events]
    delivered = {
        e["message_id"]: _timestamp(e["timestamp"]) for e in all_esp if e["event_type"] == "delivered"
    }
    near = total = 0
    for e in all_esp:
        if (
            e["event_type"] != "open"
            or "GoogleImageProxy" in e["user_agent"]
            or e["message_id"] not in delivered
        ):
            continue
        moment = _timestamp(e["timestamp"])
        if (moment - delivered[e["message_id"]]).total_seconds() <= 10:
            continue
        person = by_profile[e["profile_id"]]
        local = moment.astimezone(ZoneInfo(person["timezone"]))
        distance = abs(local.weekday() * 24 + local.hour - int(person["preferred_hour_of_week_local"]))
        near += min(distance, 168 - distance) <= 1
        total += 1
    assert total > 100
    assert near / total > 0.3  # chance would be 3/168


def test_web_orders_match_shop_orders(web, shop):
    ordered_at = {str(o["order_id"]): o["ordered_at"] for o in shop["orders"]}
    completed = [e for events in web.values() for e in events if e.get("event") == "Order Completed"]
    assert len(completed) > 20
    for event in completed:
        assert _timestamp(event["timestamp"]) == ordered_at[event["properties"]["order_id"]]
        assert event["userId"]
