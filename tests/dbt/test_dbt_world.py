"""dbt over a small synthetic world, extracted by the real ingestion assets: identity resolution vs the
generator's ground truth, junk identifiers, test accounts, and a clean `dbt build`."""

from __future__ import annotations

import csv
import datetime as dt

import dagster as dg
import pytest
from dbt_support import dbt_build, new_database, query

from dagster_project.dbt.evaluation import evaluate, ground_truth_records, score_pairs
from dagster_project.ingestion.definitions import build_defs
from dagster_project.ingestion.partitions import available_partition_keys
from dagster_project.settings import get_settings
from dagster_project.synthetic.world import WorldConfig, generate

START = dt.date(2026, 2, 2)


def extract(settings) -> None:
    """Materialize the raw assets: tables, then every day of events in one partition-range run."""
    defs = build_defs(settings)
    assets, resources = list(defs.assets or []), dict(defs.resources or {})
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([a for a in assets if not a.partitions_def], instance=instance, resources=resources)
    days = available_partition_keys(settings)
    dg.materialize(
        [a for a in assets if a.partitions_def],
        instance=instance,
        resources=resources,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )


@pytest.fixture(scope="module")
def world(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("world")
    warehouse, shop = new_database(pg_server, "dbt_world"), new_database(pg_server, "dbt_shop")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WAREHOUSE_URL", warehouse)
        env.setenv("SHOP_URL", shop)
        env.setenv("SENDWISE_SOURCE_DIR", str(out))
        env.setenv("SENDWISE_HOME", str(out / "home"))
        env.setenv("SENDWISE_EVENTS_START", START.isoformat())
        generate(WorldConfig(out=out, shop_url=shop, customers=1000, days=14, start=START, seed=42))
        settings = get_settings()
        extract(settings)
        dbt_build(warehouse, tmp_path_factory.mktemp("dbt-world-target"))
    return {"url": warehouse, "ground_truth": out / "ground_truth"}


def test_pair_scoring_counts_merges_and_splits():
    truth = {("a", "1"): "P1", ("a", "2"): "P1", ("a", "3"): "P2", ("a", "4"): "P2"}
    perfect = score_pairs(truth, {("a", "1"): "k1", ("a", "2"): "k1", ("a", "3"): "k2", ("a", "4"): "k2"})
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    merged = score_pairs(truth, {r: "k" for r in truth})
    assert (merged.precision, merged.recall, merged.keys_merging_persons) == (2 / 6, 1.0, 1)
    split = score_pairs(truth, {("a", "1"): "k1", ("a", "3"): "k2", ("a", "4"): "k2"})
    assert (split.precision, split.recall, split.persons_split) == (1.0, 0.5, 1)


def test_identity_matches_the_ground_truth(world: dict):
    """Precision must reach the 0.98 target. Recall on a two-week world is bounded by the data: about
    two thirds of the split records are devices whose owner never signed in during those two weeks (no
    identify, no userId, no IP shared with an identified device), so nothing links them; the rest are
    CRM duplicates sharing no identifier with the person (work email, no phone). Measured: 1,000 x 14
    days P=1.000 R=0.908; 1,000 x 120 days P=1.000 R=0.970 (see the report of issue 3)."""
    scores = evaluate(world["url"], world["ground_truth"])
    print(scores.summary())
    assert scores.records > 2000 and scores.true_pairs > 1000
    assert scores.precision >= 0.98, scores.summary()
    assert scores.recall >= 0.88, scores.summary()
    assert scores.keys_merging_persons <= scores.records * 0.002, scores.summary()


def test_junk_identifiers_do_not_merge_test_accounts_or_anyone(world: dict):
    truth = ground_truth_records(world["ground_truth"] / "people.csv")
    with (world["ground_truth"] / "people.csv").open(newline="") as handle:
        test_people = {
            r["person_id"] for r in csv.DictReader(handle) if r["is_test_account"].lower() == "true"
        }
    assert len(test_people) >= 3
    keys = {
        (r["record_type"], r["record_id"]): r["customer_key"]
        for r in query(world["url"], "select * from intermediate.int_identity__record_keys")
    }
    test_keys = {keys[record] for record, person in truth.items() if person in test_people and record in keys}
    assert len(test_keys) >= len(test_people)  # the shared test@example.com / 0000000000 merged nobody
    excluded = {
        (r["identifier_type"], r["identifier_value"]): r["excluded_reason"]
        for r in query(
            world["url"],
            "select * from intermediate.int_identity__identifiers where excluded_reason is not null",
        )
    }
    assert ("email", "test@example.com") in excluded and ("phone", "+10000000000") in excluded
    dim = query(
        world["url"],
        "select is_test_account, is_contactable from marts.dim_customers where customer_key = any(%s)",
        (list(test_keys),),
    )
    assert dim and all(r["is_test_account"] and not r["is_contactable"] for r in dim)


def test_the_world_builds_into_plausible_marts(world: dict):
    levels = {
        r["data_quality_level"]: r["n"]
        for r in query(
            world["url"], "select data_quality_level, count(*) as n from marts.dim_customers group by 1"
        )
    }
    assert set(levels) >= {"HIGH", "MEDIUM"}
    machine = query(
        world["url"],
        "select avg(is_machine_open::int) as share from marts.fct_email_events where event_type = 'open'",
    )[0]["share"]
    assert 0.1 < machine < 0.9  # privacy proxies open on delivery for about a third of readers
    features = query(
        world["url"],
        "select count(*) as n, sum(frequency) as orders, "
        "avg(engagement_score) as score from marts.fct_customer_features",
    )[0]
    assert features["n"] > 800 and features["orders"] > 0 and features["score"] > 0
