"""The customer marts are incremental by touched key: after each of five days of new data (a key merge, a
late event, a changed field, a suppression and its lifting, an as-of that moves every day) dim_customers
and fct_customer_features equal a --full-refresh build of the same warehouse, while people the day did
not touch keep the rows an earlier build wrote, and the day counts of the view follow the as-of anyway.
The web sessions likewise (incremental by touched visitor): late page views of ben join two sessions,
then move a session's start; the merge moves ben's or cat's sessions to the surviving key.

A tiny world written for this test (the people below), loaded day by day into one warehouse built by
`dbt build` without its tests; each day every customer model's rows are compared with what its
--full-refresh SQL selects from the same warehouse."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from dbt_support import create_raw_tables, load_raw, new_database, query
from sendwise_hand_world import _crm, _esp, _identify, _item, _order, _page, _shop, t

from dagster_project.dbt.project import run_dbt
from dagster_project.privacy import identities, keys

MARTS = {
    "marts.dim_customers": "customer_key",
    "marts.fct_customer_features": "customer_key",
    "intermediate.int_customers__features": "customer_key",
}
# Compared with the full refresh too: the survivorship work tables, incremental the same way.
COMPARED = MARTS | {
    "intermediate.int_customers__field_candidates": "customer_key, field, source, record_type, record_id",
    "intermediate.int_customers__survivorship": "customer_key, field",
    "intermediate.int_web__sessions": "session_id",
    "marts.fct_web_sessions": "session_id",
}
STAMPS = {"_built_at", "_as_of_at"}
MUG = dict(
    product_id=1, sku="MUG-1", name="Mug", category="Kitchen", price=20, created_at=t("2026-01-01"),
    updated_at=t("2026-01-01"),
)  # fmt: skip

# The as-of instant of each day: the newest event, a page view of a visitor who never identifies.
AS_OF = [t("2026-05-01"), t("2026-05-03"), t("2026-05-06"), t("2026-05-07"), t("2026-05-08")]
VISITOR = "a-77"


def day_1() -> dict[str, list[dict]]:
    return {
        "shop_products": [MUG],
        "shop_customers": [
            _shop(201, "ann@mail.org", "Ann", "Archer", None, True, t("2026-01-10"), t("2026-01-10")),
            _shop(
                202,
                "ben@mail.org",
                "Ben",
                "Baker",
                "+1 415 555 0202",
                True,
                t("2026-01-11"),
                t("2026-01-11"),
            ),
            _shop(205, "eve@mail.org", "Eve", "Evans", None, False, t("2025-06-01"), t("2025-06-01")),
            _shop(206, "fay@mail.org", "Fay", "Fox", None, True, t("2026-01-15"), t("2026-01-15")),
        ],
        "crm_contacts": [
            _crm(
                "crm-23",
                "cat@mail.org",
                "Cat",
                "Cole",
                "+1 415 555 0303",
                True,
                "Europe/Paris",
                t("2026-01-12"),
                t("2026-01-12"),
            ),
        ],  # fmt: skip
        "shop_orders": [
            _order(3001, 201, "completed", 40.0, t("2026-04-15")),
            _order(3002, 202, "completed", 80.0, t("2026-04-20")),
            _order(3005, 205, "completed", 100.0, t("2025-06-02")),
        ],
        "shop_order_items": [
            _item(1, 3001, 1, 2, 20.0, t("2026-04-15")),
            _item(2, 3002, 1, 4, 20.0, t("2026-04-20")),
            _item(3, 3005, 1, 5, 20.0, t("2025-06-02")),
        ],
        "esp_events": [
            _esp("e-1", "sent", "esp-21", "ann@mail.org", "m-20", t("2026-04-25")),
            _esp("e-2", "sent", "esp-21", "ann@mail.org", "m-21", t("2026-05-01", "11:00:00")),
            # fay's only message: in the 30-day window until the as-of passes 2026-05-04 12:00
            _esp("e-3", "sent", "esp-26", "fay@mail.org", "m-26", t("2026-04-04")),
            _esp("e-4", "open", "esp-26", "fay@mail.org", "m-26", t("2026-04-04", "13:00:00")),
        ],
        "web_events": [
            _page("w-1", VISITOR, None, AS_OF[0]),
            _page("w-b1", None, "202", t("2026-04-28", "10:00:00")),  # ben: two sessions, 50 min apart
            _page("w-b2", None, "202", t("2026-04-28", "10:50:00")),
            _identify("w-c1", "a-cat", None, t("2026-04-27", "09:00:00"), "cat@mail.org"),
            _page("w-a1", None, "201", t("2026-04-26")),  # ann
        ],
    }


def day_2() -> dict[str, list[dict]]:
    """crm-24 carries ben's email and cat's phone: ben and cat are one person. A late open of ann's m-20."""
    return {
        "crm_contacts": [
            _crm(
                "crm-24",
                "ben@mail.org",
                "Benjamin",
                "Baker",
                "+1 415 555 0303",
                True,
                None,
                t("2026-05-02"),
                t("2026-05-02"),
            ),
        ],  # fmt: skip
        "esp_events": [_esp("e-5", "open", "esp-21", "ann@mail.org", "m-20", t("2026-04-25", "14:00:00"))],
        "web_events": [_page("w-2", VISITOR, None, AS_OF[1])],
    }


def day_3() -> dict[str, list[dict]]:
    """Ann's first name changes in the shop; fay's message leaves her 30-day window (no new data of hers)."""
    return {
        "shop_customers": [
            _shop(201, "ann@mail.org", "Anne", "Archer", None, True, t("2026-01-10"), t("2026-05-05"))
        ],
        "web_events": [
            _page("w-3", VISITOR, None, AS_OF[2]),
            _page("w-b3", None, "202", t("2026-04-28", "10:25:00")),  # late: joins ben's two sessions
        ],
    }


def day_4(url: str) -> None:
    """Ann asks to be suppressed."""
    with psycopg.connect(url, autocommit=True) as conn:
        digest = keys.load(conn).digest(identities.parse("shop_customer_id:201"))
        conn.execute(
            "insert into ops.suppressed_identities (identity_hash, regulation, request_id) "
            "values (%s, 'suppress', 'pr_test')",
            (digest,),
        )
    late = _page("w-b4", None, "202", t("2026-04-28", "09:45:00"))  # starts ben's session earlier
    load_raw(url, "web_events", [_page("w-4", VISITOR, None, AS_OF[3]), late])


def day_5(url: str) -> None:
    """Ann's suppression is lifted."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from ops.suppressed_identities where request_id = 'pr_test'")
    load_raw(url, "web_events", [_page("w-5", VISITOR, None, AS_OF[4])])


def load(url: str, tables: dict[str, list[dict]]) -> None:
    for table, rows in tables.items():
        load_raw(url, table, rows)


def contents(url: str, stamps: bool = False) -> dict[str, list[dict]]:
    return {
        table: [
            {k: v for k, v in row.items() if stamps or k not in STAMPS}
            for row in query(url, f"select * from {table} order by {order}")
        ]
        for table, order in COMPARED.items()
    }


def full_build_sql(url: str, target: Path) -> dict[str, str]:
    """Each compared model's select as `--full-refresh` compiles it (no is_incremental() branch)."""
    names = [table.split(".")[1] for table in COMPARED]
    run_dbt(["compile", "--full-refresh", "--select", *names], url, target_path=target)
    compiled = target / "compiled" / "sendwise" / "models"
    return {table: next(compiled.rglob(f"{table.split('.')[1]}.sql")).read_text() for table in COMPARED}


def full_build_contents(url: str, sql: dict[str, str]) -> dict[str, list[dict]]:
    """What a full rebuild of each model writes over the tables upstream of it as they are now: with every
    model equal to this, the chain equals a --full-refresh build of the same data (by induction)."""
    return {
        table: [
            {k: v for k, v in row.items() if k not in STAMPS}
            for row in query(url, f"select * from ({sql[table]}) as full_build order by {COMPARED[table]}")
        ]
        for table in COMPARED
    }


def key_of(url: str, record_type: str, record_id: str) -> str:
    rows = query(
        url,
        "select customer_key from intermediate.int_identity__record_keys"
        " where record_type = %s and record_id = %s",
        (record_type, record_id),
    )
    return rows[0]["customer_key"]


def whole_days(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 86400)


@pytest.fixture(scope="module")
def days(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    target = tmp_path_factory.mktemp("dbt-marts-incremental")
    full_target = tmp_path_factory.mktemp("dbt-marts-full")
    url = new_database(pg_server, "dbt_marts_incr")
    create_raw_tables(url)
    loads = [
        lambda: load(url, day_1()),
        lambda: load(url, day_2()),
        lambda: load(url, day_3()),
        lambda: day_4(url),
        lambda: day_5(url),
    ]
    results, full_sql = [], {}
    for load_day in loads:
        load_day()
        run_dbt(["build", "--exclude-resource-type", "test"], url, target_path=target)
        full_sql = full_sql or full_build_sql(url, full_target)
        touched = {
            r["customer_key"] for r in query(url, "select * from intermediate.int_customers__touched_keys")
        }
        results.append(
            {
                "url": url,
                "incremental": contents(url),
                "stamped": contents(url, stamps=True),
                "full": full_build_contents(url, full_sql),
                "touched": touched,
                "keys": {
                    name: key_of(url, *record)
                    for name, record in {
                        "ann": ("shop_customer_id", "201"),
                        "ben": ("shop_customer_id", "202"),
                        "cat": ("crm_contact_id", "crm-23"),
                        "eve": ("shop_customer_id", "205"),
                        "fay": ("shop_customer_id", "206"),
                    }.items()
                },
            }
        )
    return results


def by_key(day: dict, table: str, stamped: bool = False) -> dict[str, dict]:
    rows = day["stamped" if stamped else "incremental"][table]
    return {row["customer_key"]: row for row in rows}


def test_every_day_the_incremental_marts_equal_a_full_refresh(days: list[dict]):
    for number, day in enumerate(days, start=1):
        for table in COMPARED:
            assert day["incremental"][table] == day["full"][table], f"day {number}: {table}"
            assert day["incremental"][table], f"day {number}: {table} is empty"


def test_the_merge_leaves_one_profile_under_one_key(days: list[dict]):
    before, after = days[0]["keys"], days[1]["keys"]
    assert before["ben"] != before["cat"]
    assert after["ben"] == after["cat"] in {before["ben"], before["cat"]}
    retired = ({before["ben"], before["cat"]} - {after["ben"]}).pop()
    profiles = by_key(days[1], "marts.dim_customers")
    assert retired not in profiles and after["ben"] in profiles
    assert set(profiles) == {after[name] for name in ("ann", "ben", "eve", "fay")}
    assert float(by_key(days[1], "marts.fct_customer_features")[after["ben"]]["monetary"]) == 80.0
    # both keys were touched (the retired one to be deleted), and nobody the day did not concern
    assert {before["ben"], before["cat"], after["ann"]} <= days[1]["touched"]
    assert not {after["eve"], after["fay"]} & days[1]["touched"]


def test_late_event_changed_field_and_window_edge_reach_the_rows(days: list[dict]):
    ann, fay = days[0]["keys"]["ann"], days[0]["keys"]["fay"]
    features = [by_key(day, "marts.fct_customer_features") for day in days]
    assert [f[ann]["email_unique_opens_30d"] for f in features[:2]] == [0, 1]  # the late open of m-20
    assert [f[ann]["email_sends_30d"] for f in features[:2]] == [2, 2]
    assert [by_key(day, "marts.dim_customers")[ann]["first_name"] for day in days[1:3]] == ["Ann", "Anne"]
    # fay's send of 04-04 12:00 leaves the window with the as-of of day 3 (05-06 12:00), no data of hers
    assert [f[fay]["email_sends_30d"] for f in features[:3]] == [1, 1, 0]
    assert fay in days[2]["touched"] and fay not in days[1]["touched"]


def test_suppression_drops_the_rows_and_lifting_it_restores_them(days: list[dict]):
    ann = days[0]["keys"]["ann"]
    for table in MARTS:
        assert [ann in by_key(day, table) for day in days] == [True, True, True, False, True], table
    assert by_key(days[4], "marts.dim_customers")[ann]["first_name"] == "Anne"


def test_untouched_people_keep_their_rows_while_day_counts_follow_the_as_of(days: list[dict]):
    """eve's only data is from 2025: no day rewrites her rows (their build stamp stays day 1's), while
    the view's recency_days and days_since_registration count to each day's as-of."""
    eve = days[0]["keys"]["eve"]
    for table in ("marts.dim_customers", "intermediate.int_customers__features"):
        stamps = {by_key(day, table, stamped=True)[eve]["_built_at"] for day in days}
        assert len(stamps) == 1, table
    fay = days[0]["keys"]["fay"]
    fay_stamps = [
        by_key(day, "intermediate.int_customers__features", stamped=True)[fay]["_built_at"] for day in days
    ]
    assert fay_stamps[0] == fay_stamps[1] != fay_stamps[2]
    features = [by_key(day, "marts.fct_customer_features")[eve] for day in days]
    assert [f["recency_days"] for f in features] == [whole_days(t("2025-06-02"), a) for a in AS_OF]
    assert [f["days_since_registration"] for f in features] == [whole_days(t("2025-06-01"), a) for a in AS_OF]
    assert [f["purchase_age_days"] for f in features] == [
        (a.date() - t("2025-06-02").date()).days for a in AS_OF
    ]


def sessions_of(day: dict, column: str, value: str) -> list[dict]:
    return [row for row in day["stamped"]["marts.fct_web_sessions"] if row[column] == value]


def test_sessions_follow_late_events_merges_and_suppression(days: list[dict]):
    """Every day fct_web_sessions equals its full refresh (the first test); here what the days did."""
    ben = [
        sorted(
            (r["started_at"], r["ended_at"], r["page_views"])
            for r in sessions_of(day, "shop_customer_id", "202")
        )
        for day in days
    ]
    ten, ten_50 = t("2026-04-28", "10:00:00"), t("2026-04-28", "10:50:00")
    assert ben[0] == ben[1] == [(ten, ten, 1), (ten_50, ten_50, 1)]
    assert ben[2] == [(ten, ten_50, 3)]  # the late 10:25 view joins them
    assert ben[3] == ben[4] == [(t("2026-04-28", "09:45:00"), ten_50, 4)]
    merged = days[1]["keys"]["ben"]
    for day in days[1:]:
        assert {r["customer_key"] for r in sessions_of(day, "shop_customer_id", "202")} == {merged}
        assert {r["customer_key"] for r in sessions_of(day, "anonymous_id", "a-cat")} == {merged}
    first_keys = {
        row["customer_key"]
        for row in sessions_of(days[0], "shop_customer_id", "202")
        + sessions_of(days[0], "anonymous_id", "a-cat")
    }
    assert first_keys == {days[0]["keys"]["ben"], days[0]["keys"]["cat"]}  # one visitor's sessions moved
    ann = [sessions_of(day, "shop_customer_id", "201") for day in days]
    assert [len(rows) for rows in ann] == [1, 1, 1, 0, 1]  # suppressed on day 4, lifted on day 5
    assert (
        ann[0][0]["_built_at"] == ann[1][0]["_built_at"] == ann[2][0]["_built_at"] != ann[4][0]["_built_at"]
    )
