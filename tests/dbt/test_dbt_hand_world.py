"""dbt on the hand-made world: identity, survivorship, consent, data quality and every feature of
fct_customer_features against values computed here in Python from the raw rows."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg2
import pytest
from dbt_support import query
from sendwise_hand_world import PEOPLE, PHASE_1, SHARED_ANONYMOUS_IDS

MACHINE_USER_AGENTS = ("GoogleImageProxy", "YahooMailProxy", "Apple Mail Privacy", "AppleMailPrivacy")
SESSION_GAP = timedelta(minutes=30)


def rounded(value: float, places: int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def person_of(kind: str, record_id) -> str | None:
    return next((name for name, ids in PEOPLE.items() if record_id in ids[kind]), None)


def reference_features(data: dict) -> dict[str, dict]:
    """fct_customer_features recomputed from the raw rows and the hand-made identities."""
    as_of = max(
        [o["ordered_at"] for o in data["shop_orders"]]
        + [e["event_timestamp"] for e in data["esp_events"]]
        + [e["event_timestamp"] for e in data["web_events"]]
    )
    registered = defaultdict(list)
    for c in data["crm_contacts"]:
        registered[person_of("crm", c["contact_id"])].append(c["created_at"])
    for c in data["shop_customers"]:
        registered[person_of("shop", c["customer_id"])].append(c["created_at"])
    category = {p["product_id"]: p["category"] for p in data["shop_products"]}

    features = {}
    for name in PEOPLE:
        orders = [
            o
            for o in data["shop_orders"]
            if person_of("shop", o["customer_id"]) == name and o["status"] == "completed"
        ]
        frequency = len(orders)
        monetary = sum(Decimal(str(o["order_total"])) for o in orders)
        first = min((o["ordered_at"] for o in orders), default=None)
        last = max((o["ordered_at"] for o in orders), default=None)
        registered_at = min(registered[name])
        tenure_days = (as_of - min(registered_at, first or registered_at)).total_seconds() / 86400
        quantities: dict[str, int] = defaultdict(int)
        order_ids = {o["order_id"] for o in orders}
        for item in data["shop_order_items"]:
            if item["order_id"] in order_ids:
                quantities[category[item["product_id"]]] += item["quantity"]
        top = sorted(quantities, key=lambda c: (-quantities[c], c))[:3]

        email = email_features(data["esp_events"], PEOPLE[name]["esp"], as_of)
        web = web_features(data["web_events"], name, as_of)
        score = float(
            rounded(
                0.25 * min(web["sessions"] / 20, 1)
                + 0.25 * min(web["page_views"] / 100, 1)
                + 0.25 * min(float(rounded(web["avg_duration"], 1)) / 600, 1)
                + 0.25 * min(web["active_days"] / 15, 1),
                3,
            )
        )
        recency = math.floor((as_of - last).total_seconds() / 86400) if last else None
        segments = set()
        if monetary >= 1000:
            segments.add("high_value_customer")
        if score >= 0.8:
            segments.add("highly_engaged")
        if recency is not None and recency <= 30:
            segments.add("recent_purchaser")
        segments |= {"purchased_" + c.lower().replace(" ", "_") for c in quantities}
        if email["engagement_events_30d"] >= 5:
            segments.add("email_engaged")
        if web["events"] >= 20:
            segments.add("web_active")
        features[name] = {
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "avg_order_value": rounded(monetary / frequency, 2) if frequency else Decimal(0),
            "days_since_first_order": math.floor((as_of - first).total_seconds() / 86400) if first else None,
            "purchase_frequency": rounded(frequency * 30 / max(tenure_days, 1.0), 4),
            **{k: v for k, v in email.items() if k != "engagement_events_30d"},
            "web_sessions_30d": web["sessions"],
            "web_page_views_30d": web["page_views"],
            "avg_session_duration_seconds": rounded(web["avg_duration"], 1),
            "active_days_30d": web["active_days"],
            "days_since_registration": math.floor((as_of - registered_at).total_seconds() / 86400),
            "top_categories": ",".join(top),
            "engagement_score": rounded(score, 3),
            "segments": segments,
            "lifetime_value": monetary,
        }
    return features


def email_features(events: list[dict], profiles: list[str], as_of: datetime) -> dict:
    unique = {e["event_id"]: e for e in events if e["profile_id"] in profiles}.values()
    messages: dict[str, dict] = defaultdict(
        lambda: {"sent": None, "delivered": None, "opened": False, "clicked": False}
    )
    for e in sorted(unique, key=lambda e: e["event_timestamp"]):
        m = messages[e["message_id"]]
        if e["event_type"] == "sent" and m["sent"] is None:
            m["sent"] = e["event_timestamp"]
        if e["event_type"] == "delivered" and m["delivered"] is None:
            m["delivered"] = e["event_timestamp"]
    engagement_events_30d = 0
    for e in unique:
        m = messages[e["message_id"]]
        machine = e["event_type"] == "open" and (
            (
                m["delivered"] is not None
                and 0 <= (e["event_timestamp"] - m["delivered"]).total_seconds() <= 10
            )
            or any(p.lower() in (e["user_agent"] or "").lower() for p in MACHINE_USER_AGENTS)
        )
        if e["event_type"] == "open" and not machine:
            m["opened"] = True
        if e["event_type"] == "click":
            m["clicked"] = True
        if (e["event_type"] == "click" or (e["event_type"] == "open" and not machine)) and as_of - timedelta(
            days=30
        ) < e["event_timestamp"] <= as_of:
            engagement_events_30d += 1
    result = {"engagement_events_30d": engagement_events_30d}
    for days in (30, 90):
        window = [
            m for m in messages.values() if m["sent"] and as_of - timedelta(days=days) < m["sent"] <= as_of
        ]
        sends, opens, clicks = (
            len(window),
            sum(m["opened"] for m in window),
            sum(m["clicked"] for m in window),
        )
        result |= {
            f"email_sends_{days}d": sends,
            f"email_unique_opens_{days}d": opens,
            f"email_unique_clicks_{days}d": clicks,
            f"email_open_rate_{days}d": rounded(opens / sends, 4) if sends else Decimal(0),
            f"email_click_rate_{days}d": rounded(clicks / sends, 4) if sends else Decimal(0),
        }
    return result


def web_features(events: list[dict], name: str, as_of: datetime) -> dict:
    unique = {e["message_id"]: e for e in events}.values()
    by_visitor: dict[str, list[dict]] = defaultdict(list)
    for e in unique:
        by_visitor[e["anonymous_id"] or "user:" + e["user_id"]].append(e)
    sessions = []
    for visitor_events in by_visitor.values():
        visitor_events.sort(key=lambda e: (e["event_timestamp"], e["message_id"]))
        current = [visitor_events[0]]
        for e in visitor_events[1:]:
            if e["event_timestamp"] - current[-1]["event_timestamp"] > SESSION_GAP:
                sessions.append(current)
                current = []
            current.append(e)
        sessions.append(current)
    mine = []
    for s in sessions:
        anon = s[0]["anonymous_id"]
        users = [e["user_id"] for e in s if e["user_id"]]
        owner = person_of("anon", anon) if anon and anon not in SHARED_ANONYMOUS_IDS else None
        owner = owner or (person_of("shop", int(max(users))) if users else None)
        start = s[0]["event_timestamp"]
        if owner == name and as_of - timedelta(days=30) < start <= as_of:
            mine.append(s)
    durations = [(s[-1]["event_timestamp"] - s[0]["event_timestamp"]).total_seconds() for s in mine]
    return {
        "sessions": len(mine),
        "page_views": sum(1 for s in mine for e in s if e["type"] == "page"),
        "events": sum(len(s) for s in mine),
        "avg_duration": sum(durations) / len(durations) if durations else 0.0,
        "active_days": len({s[0]["event_timestamp"].date() for s in mine}),
    }


@pytest.fixture(scope="module")
def keys(hand_world_url: str) -> dict[str, str]:
    """person -> customer_key, asserting on the way that each person's records share one key."""
    rows = query(
        hand_world_url,
        "select record_type, record_id, customer_key from intermediate.int_identity__record_keys",
    )
    by_record = {(r["record_type"], r["record_id"]): r["customer_key"] for r in rows}
    kinds = {
        "crm": "crm_contact_id",
        "shop": "shop_customer_id",
        "esp": "esp_profile_id",
        "anon": "anonymous_id",
    }
    result = {}
    for name, ids in PEOPLE.items():
        found = {by_record[(kinds[k], str(i))] for k, values in ids.items() for i in values}
        assert len(found) == 1, f"{name}'s records resolved to {found}"
        result[name] = found.pop()
    return result


@pytest.fixture(scope="module")
def customers(hand_world_url: str, keys: dict[str, str]) -> dict[str, dict]:
    rows = {r["customer_key"]: r for r in query(hand_world_url, "select * from marts.dim_customers")}
    return {name: rows[key] for name, key in keys.items()}


def test_each_person_gets_one_distinct_key_and_junk_identifiers_do_not_merge(hand_world_url, keys):
    assert len(set(keys.values())) == len(PEOPLE)  # dave/erin (junk email+phone), alice/bob (shared device)
    excluded = {
        (r["identifier_type"], r["identifier_value"]): r["excluded_reason"]
        for r in query(
            hand_world_url,
            "select * from intermediate.int_identity__identifiers where excluded_reason is not null",
        )
    }
    assert "test mailbox" in excluded[("email", "test@shop.com")]
    assert "placeholder phone" in excluded[("phone", "+15555555555")]
    assert "shared device" in excluded[("anonymous_id", "a-9")]
    dim_keys = {
        r["customer_key"] for r in query(hand_world_url, "select customer_key from marts.dim_customers")
    }
    assert dim_keys == set(keys.values())  # the never-identified visitor a-40 is not a customer


def test_identifiers_model_lists_every_identifier_with_source_and_key(hand_world_url, keys):
    rows = query(hand_world_url, "select * from intermediate.int_identity__identifiers")
    by_id = {(r["identifier_type"], r["identifier_value"]): r for r in rows}
    assert by_id[("email", "alice@mail.org")]["source"] == "crm,ecommerce,email_service"
    assert by_id[("email", "alice@mail.org")]["customer_key"] == keys["alice"]
    assert by_id[("phone", "+14155550101")]["customer_key"] == keys["alice"]  # "(415) 555-0101" in E.164
    assert by_id[("email", "frank@ex.com")]["source"] == "crm,website"  # identify traits "Frank@Ex.com"
    assert by_id[("anonymous_id", "a-6")]["customer_key"] == keys["frank"]
    assert by_id[("email", "carol@x.com")]["customer_key"] == keys["carol"]


def test_survivorship_rules_pick_the_configured_value_and_keep_its_source(customers):
    alice, carol, frank = customers["alice"], customers["carol"], customers["frank"]
    # priority_source: CRM's "Alice" beats the shop's newer "Ally".
    assert (alice["first_name"], alice["first_name_source"]) == ("Alice", "crm")
    # last_write_wins: the shop's phone (updated 2026-03-20) beats CRM's (2026-03-01) despite CRM's priority.
    assert (alice["phone"], alice["phone_source"]) == ("+14155550199", "ecommerce")
    # Within one source the newest record wins: crm-3 (2026-03-25) over crm-2.
    assert (carol["first_name"], carol["last_name"]) == ("Caroline", "Jones")
    # merge: union of the consent sources (the shop's accepts_marketing is false for alice).
    assert alice["consent_sources"] == "crm,email_service"
    assert (frank["email"], frank["email_source"]) == ("frank@ex.com", "crm")
    assert alice["timezone"] == "America/Los_Angeles" and alice["timezone_source"] == "crm"


def test_consent_and_contactability(customers):
    expected = {
        "alice": ("subscribed", True),
        "bob": ("subscribed", True),
        "carol": ("unsubscribed", False),
        "dave": ("subscribed", False),
        "erin": ("subscribed", False),
        "frank": ("never_subscribed", False),
        "gina": ("subscribed", True),
    }
    actual = {n: (c["subscription_status"], c["is_contactable"]) for n, c in customers.items()}
    assert actual == expected
    assert customers["dave"]["is_test_account"] and not customers["dave"]["is_email_valid"]


def reference_quality(row: dict, as_of: datetime, has_orders: bool) -> str:
    score = 1.0 if row["is_email_valid"] else 0.0
    complete = sum(row[c] is not None for c in ("email", "first_name", "last_name")) / 3
    score += 1 if complete >= 0.8 else 0.5 if complete >= 0.6 else 0
    age = (as_of - row["last_updated_at"]).total_seconds() / 86400
    score += 1 if age <= 7 else 0.5 if age <= 30 else 0
    sources = len(row["source_systems"].split(","))
    score += 1 if sources >= 3 else 0.5 if sources >= 2 else 0
    score /= 4
    usable = score >= 0.4 or row["is_email_valid"] or has_orders  # reachable, or a buyer: not INVALID
    return "HIGH" if score >= 0.8 else "MEDIUM" if score >= 0.6 else "LOW" if usable else "INVALID"


def test_data_quality_levels_follow_the_guide(hand_world_url, customers):
    as_of = query(hand_world_url, "select as_of_at from intermediate.int_calendar__as_of")[0]["as_of_at"]
    levels = {n: c["data_quality_level"] for n, c in customers.items()}
    buyers = {person_of("shop", o["customer_id"]) for o in PHASE_1["shop_orders"]}
    assert levels == {n: reference_quality(c, as_of, n in buyers) for n, c in customers.items()}
    assert levels["alice"] == "HIGH" and levels["dave"] == "INVALID"
    assert len(set(levels.values())) >= 3


def test_machine_opens_are_flagged(hand_world_url):
    flags = {
        r["email_event_id"]: r["is_machine_open"]
        for r in query(
            hand_world_url,
            "select email_event_id, is_machine_open from marts.fct_email_events where event_type = 'open'",
        )
    }
    assert flags == {"e03": False, "e12": True, "e13": False, "e22": True, "e23": False}


def test_features_match_an_independent_python_computation(hand_world_url, keys):
    expected = reference_features(PHASE_1)
    rows = {r["customer_key"]: r for r in query(hand_world_url, "select * from marts.fct_customer_features")}
    assert len(rows) == len(PEOPLE)
    for name, want in expected.items():
        got = dict(rows[keys[name]])
        got_segments = set(filter(None, got.pop("behavioural_segments").split(",")))
        assert got_segments == want.pop("segments"), name
        for column, value in want.items():
            assert got[column] == value, f"{name}.{column}: dbt {got[column]!r} != python {value!r}"
    # The edge cases really are edge cases.
    assert expected["bob"]["frequency"] == 0 and expected["bob"]["recency_days"] is None  # only a refund
    assert expected["gina"]["email_sends_90d"] == 0  # no email events
    assert expected["alice"]["email_unique_opens_30d"] == 2 and expected["alice"]["web_sessions_30d"] == 4


def test_analyst_role_reads_marts_but_not_raw_or_pii(hand_world_url, as_analyst):
    analyst_url = as_analyst(hand_world_url)
    assert query(analyst_url, "select count(*) as n from marts.fct_customer_features")[0]["n"] == len(PEOPLE)
    assert (
        query(
            analyst_url,
            "select count(*) as n from marts.dim_customers_masked where email_masked like 'a***@%'",
        )[0]["n"]
        == 1
    )
    assert len(query(analyst_url, "select customer_key, data_quality_level from marts.dim_customers")) == len(
        PEOPLE
    )
    for forbidden in (
        "select email from marts.dim_customers",
        "select * from raw.shop_customers",
        "select * from staging.stg_crm__contacts",
        "select * from marts.dim_customers",
    ):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(analyst_url, forbidden)


def test_analyst_cannot_find_a_person_by_hashing_a_guessed_email_nor_read_the_key(hand_world_url, as_analyst):
    import hashlib
    import hmac

    from dagster_project.privacy import keys

    analyst_url = as_analyst(hand_world_url)
    email = "alice@mail.org"
    guesses = [hashlib.md5(email.encode()).hexdigest(), hashlib.sha256(email.encode()).hexdigest()]
    found = "select count(*) as n from marts.dim_customers_masked where email_hash = any(%s)"
    assert query(analyst_url, found, (guesses,))[0]["n"] == 0
    sql_guesses = (
        "select count(*) as n from marts.dim_customers_masked "
        "where email_hash in (md5(%s), encode(sha256(convert_to(%s, 'UTF8')), 'hex'))"
    )
    assert query(analyst_url, sql_guesses, (email, email))[0]["n"] == 0
    # The key's holder finds her: the hash is a standard HMAC-SHA256 of the email.
    secret, _ = keys.configured_secret()
    assert (
        query(hand_world_url, found, ([hmac.new(secret, email.encode(), "sha256").hexdigest()],))[0]["n"] == 1
    )
    # Nor can the customer key be recomputed from an identifier.
    keys_found = (
        "select count(*) as n from marts.dim_customers_masked "
        "where customer_key = 'cus_' || substr(md5(%s), 1, 16)"
    )
    assert query(analyst_url, keys_found, (f"email:{email}",))[0]["n"] == 0
    for forbidden in ("select * from ops.privacy_keys", "select inner_pad from ops.privacy_keys"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(analyst_url, forbidden)
    definition = query(analyst_url, "select definition from pg_views where viewname = 'dim_customers_masked'")
    assert secret.decode() not in definition[0]["definition"]


def test_docs_generate_offline_into_one_self_contained_page(hand_world_url: str, tmp_path):
    from dagster_project.dbt.project import run_dbt

    run_dbt(["docs", "generate", "--static"], hand_world_url, target_path=tmp_path)
    page = (tmp_path / "static_index.html").read_text()
    assert "fct_customer_features" in page and "unified customer profile" in page
    assert 'src="http' not in page  # nothing fetched from the internet when opened


def test_every_model_and_column_is_described_and_keyed(hand_world_url: str, dbt_target: Path):
    """In the spirit of dbt-project-evaluator: every model, seed and snapshot of the project has a
    description, every column of its built relation has one (and no description names a column the
    relation lacks), and every model and snapshot has a primary-key test: unique + not_null on one column,
    or unique_combination_of_columns."""
    manifest = json.loads((dbt_target / "manifest.json").read_text())
    pk_columns: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    composite_pk: set[str] = set()
    for test in manifest["nodes"].values():
        if test["resource_type"] != "test" or not test.get("attached_node"):
            continue
        name = (test.get("test_metadata") or {}).get("name")
        if name in ("unique", "not_null") and test.get("column_name"):
            pk_columns[test["attached_node"]][test["column_name"]].add(name)
        elif name == "unique_combination_of_columns":
            composite_pk.add(test["attached_node"])

    problems = []
    checked = 0
    for unique_id, node in sorted(manifest["nodes"].items()):
        if node["resource_type"] not in ("model", "seed", "snapshot") or node["package_name"] != "sendwise":
            continue
        label = f"{node['resource_type']} {node['name']}"
        if node["config"].get("materialized") == "ephemeral":
            # An ephemeral model is never a relation (none today): only its description can be checked.
            if not node["description"].strip():
                problems.append(f"{label}: no description")
            continue
        relation = node.get("alias") or node["name"]
        columns = [
            row["column_name"]
            for row in query(
                hand_world_url,
                "select column_name from information_schema.columns"
                " where table_schema = %s and table_name = %s order by ordinal_position",
                (node["schema"], relation),
            )
        ]
        # The hand world is one plain `dbt build`, which builds every enabled model, seed and snapshot: a
        # relation missing there is not skipped but reported (it would otherwise pass unchecked).
        if not columns:
            problems.append(f"{label}: relation {node['schema']}.{relation} was not built")
            continue
        checked += 1
        if not node["description"].strip():
            problems.append(f"{label}: no description")
        described = {
            name: (column.get("description") or "").strip() for name, column in node["columns"].items()
        }
        undescribed = [column for column in columns if not described.get(column)]
        if undescribed:
            problems.append(f"{label}: columns without a description: {', '.join(undescribed)}")
        phantom = sorted(set(described) - set(columns))
        if phantom:
            problems.append(f"{label}: described columns not in the relation: {', '.join(phantom)}")
        if node["resource_type"] != "seed":
            keyed = unique_id in composite_pk or any(
                tests >= {"unique", "not_null"} for tests in pk_columns[unique_id].values()
            )
            if not keyed:
                problems.append(
                    f"{label}: no primary-key test (unique + not_null on one column, or"
                    " unique_combination_of_columns)"
                )
    assert checked > 30, f"only {checked} relations checked: is the manifest the hand world's?"
    assert not problems, "dbt project documentation/key gaps:\n" + "\n".join(problems)
