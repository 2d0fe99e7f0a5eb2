"""The identity chain is incremental by touched record: after each of five days of new data (late events,
a key merge, an email repaired by evidence another record brings, an identifier shared by one record too
many so that its component splits, a day without new data, a record deleted from the shop and an email
change that makes the shared identifier usable again) int_identity__observations, __identifier_checks and
__protected_values equal what their --full-refresh SQL selects from the same warehouse, and
int_identity__components equals the connected components of the edges those tables give (computed here),
while identifiers and records the day did not touch keep the rows (build stamps) an earlier build wrote.

A tiny world written for this test, loaded day by day into one warehouse; each day builds the identity
chain (`dbt build --select +int_identity__identifiers`, no data tests)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
from dbt_support import create_raw_tables, load_raw, new_database, query
from sendwise_hand_world import _crm, _esp, _identify, _page, _shop, t

from dagster_project.dbt.project import run_dbt

TABLES = {
    "intermediate.int_identity__observations": "1, 2, 3, 4, 5",  # source .. identifier_value
    "intermediate.int_identity__identifier_checks": "identifier_type, identifier_value",
    "intermediate.int_identity__protected_values": "identifier_type, identifier_value",
}
COMPONENTS = "intermediate.int_identity__components"
OBSERVATIONS = "intermediate.int_identity__observations"
MERGE_LIMIT = 3  # var identity_max_records_per_identifier


def day_1() -> dict[str, list[dict]]:
    """ann (shop 301, ESP esp-1, web a-1 identified as 301); bob (shop 302); cat (CRM c-1 with a phone);
    team@x.org on shops 303, 304, 305 (three records: still usable, one component); shop 306 wrote
    "danx.org" (malformed, nothing to repair it from yet)."""
    return {
        "shop_customers": [
            _shop(301, "ann@x.org", "Ann", "A", None, True, t("2026-01-01"), t("2026-01-01")),
            _shop(302, "bob@x.org", "Bob", "B", None, True, t("2026-01-02"), t("2026-01-02")),
            *(
                _shop(cid, "team@x.org", "Team", str(cid), None, True, t("2026-01-03"), t("2026-01-03"))
                for cid in (303, 304, 305)
            ),
            _shop(306, "danx.org", "Dan", "D", None, True, t("2026-01-04"), t("2026-01-04")),
        ],
        "crm_contacts": [
            _crm(
                "c-1",
                "cat@x.org",
                "Cat",
                "C",
                "+1 415 555 0101",
                True,
                None,
                t("2026-01-05"),
                t("2026-01-05"),
            )
        ],
        "esp_events": [_esp("e-1", "sent", "esp-1", "ann@x.org", "m-1", t("2026-02-01"))],
        "web_events": [
            _identify("w-1", "a-1", "301", t("2026-02-01"), "ann@x.org"),
            _page("w-2", "a-2", None, t("2026-02-02")),
        ],
    }


def day_2() -> dict[str, list[dict]]:
    """CRM c-2 carries bob's email and cat's phone: bob and cat merge. CRM c-6 brings dan@x.org, the one
    valid email "danx.org" can be: shop 306 (no new data of its own) is repaired and joins c-6. A late
    ESP event of esp-1, older than its first one."""
    return {
        "crm_contacts": [
            _crm(
                "c-2",
                "bob@x.org",
                "Bob",
                "B",
                "+1 415 555 0101",
                True,
                None,
                t("2026-02-03"),
                t("2026-02-03"),
            ),
            _crm("c-6", "dan@x.org", "Dan", "D", None, True, None, t("2026-02-03"), t("2026-02-03")),
        ],
        "esp_events": [_esp("e-0", "sent", "esp-1", "ann@x.org", "m-0", t("2026-01-20"))],
    }


def day_3() -> dict[str, list[dict]]:
    """Shop 307 also carries team@x.org: four shop records, over the merge guard, the team component
    splits. a-2 identifies as bob (a late event)."""
    return {
        "shop_customers": [
            _shop(307, "team@x.org", "Team", "307", None, True, t("2026-02-04"), t("2026-02-04"))
        ],
        "web_events": [_identify("w-3", "a-2", "302", t("2026-02-01"), "bob@x.org")],
    }


def day_5(url: str) -> None:
    """Shop 302 is deleted; shop 305 changes its email: team@x.org is back to three records, usable."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("delete from raw.shop_customers where customer_id = 302")
    conn.close()
    load_raw(
        url,
        "shop_customers",
        [_shop(305, "eve@x.org", "Eve", "E", None, True, t("2026-01-03"), t("2026-02-06"))],
    )


def load(url: str, tables: dict[str, list[dict]]) -> None:
    for table, rows in tables.items():
        load_raw(url, table, rows)


def without_stamp(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "_built_at"} for row in rows]


def full_build_sql(url: str, target: Path) -> dict[str, str]:
    """Each compared model's select as `--full-refresh` compiles it (no is_incremental() branch)."""
    names = [table.split(".")[1] for table in TABLES]
    run_dbt(["compile", "--full-refresh", "--select", *names], url, target_path=target)
    compiled = target / "compiled" / "sendwise" / "models"
    return {table: next(compiled.rglob(f"{table.split('.')[1]}.sql")).read_text() for table in TABLES}


def expected_components(url: str) -> dict[str, frozenset[str]]:
    """node -> its component, by union-find over the edges the stored observations and checks give: a
    record and each of its identifiers, unless either is excluded; a record's own id is a node."""
    excluded = {
        f"{r['identifier_type']}:{r['identifier_value']}"
        for r in raw_rows(url, "select * from intermediate.int_identity__identifier_checks")
        if r["excluded_reason"] is not None
    }
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for r in raw_rows(url, "select * from intermediate.int_identity__observations"):
        record, node = (
            f"{r['record_type']}:{r['record_id']}",
            f"{r['identifier_type']}:{r['identifier_value']}",
        )
        if record not in excluded and node not in excluded:
            parent[find(record)] = find(node)
    members = defaultdict(set)
    for node in list(parent):
        members[find(node)].add(node)
    return {node: frozenset(members[find(node)]) for node in parent}


def raw_rows(url: str, sql: str) -> list[dict]:
    """Rows with tokens as stored (not revealed): component nodes embed the tokens."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql)
            return [dict(row) for row in cur.fetchall()]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def days(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    target = tmp_path_factory.mktemp("dbt-identity-incremental")
    full_target = tmp_path_factory.mktemp("dbt-identity-full")
    url = new_database(pg_server, "dbt_ident_incr")
    create_raw_tables(url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:  # the on-run-end grants expect it
        cur.execute("create schema if not exists marts")
    conn.close()
    loads = [
        lambda: load(url, day_1()),
        lambda: load(url, day_2()),
        lambda: load(url, day_3()),
        lambda: None,
        lambda: day_5(url),
    ]
    results, full_sql = [], {}
    for load_day in loads:
        load_day()
        run_dbt(
            ["build", "--select", "+int_identity__identifiers", "--exclude-resource-type", "test"],
            url,
            target_path=target,
        )
        full_sql = full_sql or full_build_sql(url, full_target)
        components = raw_rows(url, f"select * from {COMPONENTS}")
        results.append(
            {
                "stored": {
                    table: query(url, f"select * from {table} order by {order}")
                    for table, order in TABLES.items()
                },
                "full": {
                    table: query(url, f"select * from ({full_sql[table]}) as full_build order by {order}")
                    for table, order in TABLES.items()
                },
                "components": components,
                "expected_components": expected_components(url),
                "misrooted": raw_rows(
                    url,
                    f"select component_id from {COMPONENTS} group by component_id"
                    " having component_id <> min(node) or count(*) filter (where node = component_id) <> 1",
                ),
                "component_of": {
                    r["node"]: r["component_id"]
                    for r in query(url, f"select node, component_id from {COMPONENTS}")
                },
                "stamps": {
                    "components": {r["node"]: r["_built_at"] for r in components},
                    "checks": {
                        (r["identifier_type"], r["identifier_value"]): r["_built_at"]
                        for r in raw_rows(url, "select * from intermediate.int_identity__identifier_checks")
                    },
                    "observations": {
                        tuple(
                            r[c]
                            for c in (
                                "source",
                                "record_type",
                                "record_id",
                                "identifier_type",
                                "identifier_value",
                            )
                        ): r["_built_at"]
                        for r in raw_rows(url, "select * from intermediate.int_identity__observations")
                    },
                },
                "checks": {
                    (r["identifier_type"], r["identifier_value"]): r
                    for r in query(url, "select * from intermediate.int_identity__identifier_checks")
                },
            }
        )
    return results


def same_component(day: dict, *nodes: str) -> bool:
    return len({day["component_of"][node] for node in nodes}) == 1


def test_every_day_each_identity_model_equals_a_full_refresh(days: list[dict]):
    for number, day in enumerate(days, start=1):
        for table in TABLES:
            assert without_stamp(day["stored"][table]) == without_stamp(day["full"][table]), (
                f"day {number}: {table}"
            )
            assert day["stored"][table], f"day {number}: {table} is empty"
        stored = defaultdict(set)
        for row in day["components"]:
            stored[row["component_id"]].add(row["node"])
        assert {row["node"]: frozenset(stored[row["component_id"]]) for row in day["components"]} == day[
            "expected_components"
        ], f"day {number}: components"
        assert day["misrooted"] == [], f"day {number}: component_id is not the smallest node"


def test_merge_repair_split_and_rejoin(days: list[dict]):
    bob, cat, c2 = "shop_customer_id:302", "crm_contact_id:c-1", "crm_contact_id:c-2"
    assert not same_component(days[0], bob, cat)
    assert same_component(days[1], bob, cat, c2)  # c-2 carries bob's email and cat's phone
    team = ["shop_customer_id:303", "shop_customer_id:304", "shop_customer_id:305"]
    assert same_component(days[0], *team) and same_component(days[1], *team)
    for day in days[2:4]:  # 307 is a fourth shop record on team@x.org: the component splits
        assert len({day["component_of"][node] for node in [*team, "shop_customer_id:307"]}) == 4
        assert day["checks"][("email", "team@x.org")]["excluded_reason"] == (
            f"over-merge guard: shared by {MERGE_LIMIT + 1} records of one source"
        )
    # day 5: 302 is gone, 305 moved to eve@x.org: team@x.org is usable again and rejoins 303, 304 and 307
    shop_302 = [
        [r for r in day["stored"][OBSERVATIONS] if r["source"] == "ecommerce" and r["record_id"] == "302"]
        for day in days
    ]
    assert [bool(rows) for rows in shop_302] == [True, True, True, True, False]
    assert same_component(days[4], cat, c2, "anonymous_id:a-2", bob)  # a-2 identified as user 302
    assert days[4]["checks"][("email", "team@x.org")]["excluded_reason"] is None
    assert same_component(days[4], *team[:2], "shop_customer_id:307")
    assert not same_component(days[4], team[0], team[2])
    # "danx.org" is repaired from day 2, when c-6 brings dan@x.org: shop 306 had no new data that day
    assert "crm_contact_id:c-6" not in days[0]["component_of"]
    assert same_component(days[1], "shop_customer_id:306", "crm_contact_id:c-6")
    assert ("email", "danx.org") in days[0]["checks"] and ("email", "danx.org") not in days[1]["checks"]


def test_late_event_moves_first_seen(days: list[dict]):
    firsts = [day["checks"][("esp_profile_id", "esp-1")]["first_seen_at"] for day in days[:2]]
    assert firsts == [t("2026-02-01"), t("2026-01-20")]
    a2 = [
        ("anonymous_id", "a-2") in day["checks"]
        and same_component(day, "anonymous_id:a-2", "shop_customer_id:302")
        for day in days[:3]
    ]
    assert a2 == [False, False, True]


def of_records(kind: str, key, ids: set[str]) -> bool:
    """The row's record (observations) or node (checks, components) is one of these record ids."""
    if kind == "components":
        return key.split(":", 1)[1] in ids and not key.startswith(("email:", "phone:"))
    if kind == "checks":
        return key[1] in ids and key[0] not in ("email", "phone")
    return key[2] in ids


def test_untouched_rows_keep_their_build_stamp(days: list[dict]):
    """After day 2 (esp-1's late event rewrites ann's component) nothing touches ann (shop 301, web a-1):
    her rows keep day 2's stamps; shop 306 is rewritten on day 2 only (its repair); a day without new
    data rewrites nothing."""
    for kind in ("components", "checks", "observations"):
        stamps = [day["stamps"][kind] for day in days]
        ann = [key for key in stamps[1] if of_records(kind, key, {"301", "a-1"})]
        dan = [key for key in stamps[1] if of_records(kind, key, {"306"})]
        assert ann and dan, kind
        for number, later in enumerate(stamps[2:], start=3):
            for keys in (ann, dan):
                assert {key: later[key] for key in keys} == {key: stamps[1][key] for key in keys}, (
                    f"{kind} day {number}"
                )
        assert stamps[3] == stamps[2], f"{kind}: the day without new data"
    components = [day["stamps"]["components"] for day in days]
    assert components[0]["shop_customer_id:306"] != components[1]["shop_customer_id:306"]
    assert components[0]["shop_customer_id:301"] != components[1]["shop_customer_id:301"]
