"""`sendwise run` end to end on small worlds written by hand, the way a user brings their own data.

(a) a shop database only (no crm/, web/ or esp/ folder: those sources are absent), where every third
    customer has no email and every fourth order no ordered_at (both optional in SOURCES.md), with a
    sentinel table in the user's shop schema and a sentinel file in the source folder that must survive;
(b) web and ESP event files only, the shop declared absent in a project file (sendwise.toml).
The features are checked against values computed here from the records the test wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from field_tokens import decrypt
from ingestion_helpers import (
    SHOP_DDL,
    esp_event,
    materializations,
    materialize_raw,
    query,
    raw_counts,
    web_event,
    write_jsonl,
)

from dagster_project.cli import main as cli_main
from dagster_project.settings import get_settings
from dagster_project.warehouse import connection

# The shop world, written by hand as data: customer i buys i % 4 times, order j of customer i costs
# 10*i + 5*j (USD) on day (7*i + 3*j) % 60 after March 1st; every fifth customer's third order is refunded.
# Every third customer has no email; every fourth order has no ordered_at (its created_at is the same time).
CUSTOMERS = {i: None if i % 3 == 0 else f"c{i}@shop.example" for i in range(1, 31)}
ORDERS = [
    (
        100 * i + j,
        i,
        "refunded" if (i % 5 == 0 and j == 2) else "completed",
        f"{10 * i + 5 * j}.00",
        (datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(days=(7 * i + 3 * j) % 60)).isoformat(),
    )
    for i in CUSTOMERS
    for j in range(i % 4)
]
# The web + ESP world: person i (ESP profile) gets i % 5 messages (sent day 1 + j, 08:00), opens the
# even ones, clicks every third; visits on i % 3 days (two page views 5 minutes apart) after identifying.
PEOPLE = {i: f"p{i}@mail.example" for i in range(1, 31)}


@pytest.fixture
def own_env(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The user's folder (a sentinel file in it), a Dagster home of the test's own, the sandbox ESP."""
    for name in (
        "SHOP_URL",
        "SENDWISE_ABSENT_SOURCES",
        "SENDWISE_CONFIG",
        "ESP_API_KEY",
        "ESP_LIST_ID",
        "ESP_BASE_URL",
        "SENDWISE_ESP_EVENTS_SOURCE",
        "SENDWISE_EVENTS_START",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESP_PROVIDER", "sandbox")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "exports"
    source.mkdir()
    (source / "README.txt").write_text("the user's own file\n")
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source))
    yield source
    from dagster_project.activation.esp_cli import stop
    from dagster_project.activation.resources import sandbox_state_dir

    stop(sandbox_state_dir(get_settings()))


def _write_shop(url: str) -> None:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        conn.execute(SHOP_DDL)
        conn.execute("create table shop.sentinel (note text)")
        conn.execute("insert into shop.sentinel values ('the user''s own table')")
        for cid, email in CUSTOMERS.items():
            conn.execute(
                "insert into shop.customers values (%s, %s, null, null, null, true, %s, %s)",
                (cid, email, "2026-01-01T00:00:00+00", "2026-01-01T00:00:00+00"),
            )
        conn.execute(
            "insert into shop.products values (1, 'SKU-1', 'Mug', 'home', 10.00, "
            "'2026-01-01T00:00:00+00', '2026-01-01T00:00:00+00')"
        )
        for order_id, cid, status, total, at in ORDERS:
            ordered_at = None if order_id % 4 == 0 else at
            conn.execute(
                "insert into shop.orders values (%s, %s, %s, %s, 'USD', %s, %s, %s)",
                (order_id, cid, status, total, ordered_at, at, at),
            )
            conn.execute(
                "insert into shop.order_items values (%s, %s, 1, 1, %s, %s, %s)",
                (order_id * 10, order_id, total, at, at),
            )


def _expected_shop_features() -> dict[str, dict]:
    """RFM by hand: completed orders only, recency in whole days before the latest order (the as-of)."""
    as_of = max(datetime.fromisoformat(at) for *_, at in ORDERS)
    expected = {}
    for cid in CUSTOMERS:
        done = [
            (Decimal(total), datetime.fromisoformat(at))
            for _, c, status, total, at in ORDERS
            if c == cid and status == "completed"
        ]
        last = max((at for _, at in done), default=None)
        expected[str(cid)] = {
            "frequency": len(done),
            "monetary": sum((total for total, _ in done), Decimal("0.00")),
            "recency_days": None if last is None else int((as_of - last).total_seconds() // 86400),
        }
    return expected


def _features(url: str, columns: list[str], key: str = "d.email") -> dict[str, dict]:
    selected = ", ".join("f." + c for c in columns)
    rows = query(
        url,
        f"select {'d.email_encrypted' if key == 'd.email' else key}, {selected} "
        "from marts.fct_customer_features f join marts.dim_customers d using (customer_key)",
    )
    shown = (decrypt(r[0]) if key == "d.email" else r[0] for r in rows)  # d.email holds the ciphertext
    return {k: dict(zip(columns, row[1:], strict=True)) for k, row in zip(shown, rows, strict=True)}


@pytest.mark.slow
def test_run_on_a_shop_only(own_env: Path, warehouse_url: str, shop_url: str, capsys):
    _write_shop(shop_url)
    assert cli_main(["run"]) == 0, capsys.readouterr().err[-3000:]
    err = capsys.readouterr().err
    for source in ("crm", "web", "esp"):
        assert f"source {source}: absent (no {source}/ folder in {own_env}); it loads nothing" in err

    by_shop_id = "d.shop_customer_id::text"
    features = _features(warehouse_url, ["frequency", "monetary", "recency_days"], key=by_shop_id)
    assert features == _expected_shop_features()
    assert query(warehouse_url, "select count(*) from marts.dim_customers where email is null") == [(10,)]
    from_created_at = "select count(*) from marts.fct_orders where ordered_at_source = 'created_at'"
    assert query(warehouse_url, from_created_at) == [(len([o for o in ORDERS if o[0] % 4 == 0]),)]
    statuses = dict(query(warehouse_url, "select stream, status from ops.load_log"))
    assert statuses["crm_contacts"] == "absent" and statuses["shop_orders"] == "success", statuses
    assert query(warehouse_url, "select count(*) from raw.web_events") == [(0,)]  # created empty
    # nothing of the user's touched: the sentinel table and file are there, nothing was written beside them
    assert query(shop_url, "select note from shop.sentinel") == [("the user's own table",)]
    assert sorted(p.name for p in own_env.iterdir()) == ["README.txt"]


def _write_events(source: Path) -> dict[str, dict]:
    """ESP and web files for PEOPLE; returns the features each person must get."""
    esp, web, expected = {}, {}, {}
    for i, email in PEOPLE.items():
        sends = i % 5
        for j in range(sends):
            day, message = f"2026-05-{1 + j:02d}", f"m{i}-{j}"

            kinds = ["sent"] + ["open"] * (j % 2 == 0) + ["click"] * (j % 3 == 0)
            esp.setdefault(day, []).extend(
                esp_event(
                    f"{message}-{kind}",
                    day,
                    event_type=kind,
                    profile_id=f"esp-{i}",
                    email=email,
                    message_id=message,
                    timestamp=f"{day}T{8 + n:02d}:00:00+00:00",
                )
                for n, kind in enumerate(kinds)
            )
        visits = i % 3
        for v in range(visits):
            day, anon = f"2026-05-{10 + v:02d}", f"anon-{i}"
            web.setdefault(day, []).extend(
                web_event(
                    f"w{i}-{v}-{n}",
                    day,
                    type=kind,
                    anonymousId=anon,
                    userId=None,
                    timestamp=f"{day}T10:{minute}:00+00:00",
                    **extra,
                )
                for n, (kind, minute, extra) in enumerate(
                    [("identify", "00", {"traits": {"email": email}}), ("page", "01", {}), ("page", "06", {})]
                )
            )
        expected[email] = {
            "frequency": 0,
            "monetary": Decimal("0.00"),
            "recency_days": None,
            "email_sends_30d": sends,
            "email_unique_opens_30d": len([j for j in range(sends) if j % 2 == 0]),
            "email_unique_clicks_30d": len([j for j in range(sends) if j % 3 == 0]),
            "web_sessions_30d": visits,
        }
    for day, events in esp.items():
        write_jsonl(source / "esp" / "events" / f"{day}.jsonl", events)
    for day, events in web.items():
        write_jsonl(source / "web" / "events" / f"{day}.jsonl", events)
    return {email: features for email, features in expected.items() if features["email_sends_30d"]}


@pytest.mark.slow
def test_run_on_web_and_esp_files_without_a_shop(own_env: Path, warehouse_url: str, capsys):
    (own_env.parent / "sendwise.toml").write_text('[sources]\nabsent = ["shop"]\n')  # in the working dir
    expected = _write_events(own_env)
    assert cli_main(["run"]) == 0, capsys.readouterr().err[-3000:]
    err = capsys.readouterr().err
    assert "source shop: absent (declared absent" in err and "source crm: absent (no crm/ folder" in err

    columns = list(next(iter(expected.values())))
    features = _features(warehouse_url, columns)
    assert {email: features[email] for email in expected} == expected
    statuses = dict(
        query(warehouse_url, "select stream, status from ops.load_log where left(stream, 5) = 'shop_'")
    )
    assert statuses == dict.fromkeys(
        ("shop_customers", "shop_products", "shop_orders", "shop_order_items"), "absent"
    )
    # the absent shop's quarantine checks say why they have nothing to look at
    (results,) = query(warehouse_url, "select results::text from ops.validation_results "
                                      "where suite = 'raw_shop_customers'")[0]  # fmt: skip
    assert "source of 'shop_customers' absent: nothing loaded" in results


def test_absent_sources_load_nothing_and_say_why(own_env: Path, warehouse_url: str, monkeypatch):
    """The raw assets alone: the shop declared absent, no crm/ or esp/ folder, one day of web events."""
    monkeypatch.setenv("SENDWISE_ABSENT_SOURCES", "shop")
    write_jsonl(own_env / "web" / "events" / "2026-05-01.jsonl", [web_event("m1", "2026-05-01")])
    results = materialize_raw(["2026-05-01"])
    found = materializations(results)
    assert found["raw/shop_orders"]["status"] == "absent" and found["raw/crm_contacts"]["status"] == "absent"
    assert found["raw/esp_events"]["notes"] == f"- source esp absent: no esp/ folder in {own_env}"
    assert found["raw/web_events"]["rows_loaded"] == 1 and "status" not in found["raw/web_events"]
    assert raw_counts(warehouse_url) == {**dict.fromkeys(raw_counts(warehouse_url), 0), "web_events": 1}
    logged = dict(query(warehouse_url, "select stream, status from ops.load_log"))
    assert logged == {
        **dict.fromkeys(
            (
                "shop_customers",
                "shop_products",
                "shop_orders",
                "shop_order_items",
                "crm_contacts",
                "esp_events",
            ),
            "absent",
        ),
        "web_events": "success",
    }
