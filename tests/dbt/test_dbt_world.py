"""dbt over a small synthetic world, extracted by the real ingestion assets: identity resolution vs the
generator's ground truth, junk identifiers, test accounts, and a clean `dbt build`."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest
from dbt_support import dbt_build, new_database, query

from dagster_project.dbt.evaluation import (
    ground_truth_records,
    identity_report,
    linkable_components,
    reachable_recall,
    same_name_pairs,
    score_pairs,
)
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
def world(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    out = tmp_path_factory.mktemp("world")
    warehouse, shop = new_database(pg_server, "dbt_world"), new_database(pg_server, "dbt_shop")
    with pytest.MonkeyPatch.context() as home:  # kept while the tests read: its field key decrypts
        home.setenv("SENDWISE_HOME", str(out / "home"))
        with pytest.MonkeyPatch.context() as env:
            env.setenv("WAREHOUSE_URL", warehouse)
            env.setenv("SHOP_URL", shop)
            env.setenv("SENDWISE_SOURCE_DIR", str(out))
            env.setenv("SENDWISE_EVENTS_START", START.isoformat())
            generate(WorldConfig(out=out, shop_url=shop, customers=1000, days=14, start=START, seed=42))
            settings = get_settings()
            extract(settings)
            dbt_build(warehouse, tmp_path_factory.mktemp("dbt-world-target"))
        yield {"url": warehouse, "ground_truth": out / "ground_truth"}


def test_pair_scoring_counts_merges_and_splits():
    truth = {("a", "1"): "P1", ("a", "2"): "P1", ("a", "3"): "P2", ("a", "4"): "P2"}
    perfect = score_pairs(truth, {("a", "1"): "k1", ("a", "2"): "k1", ("a", "3"): "k2", ("a", "4"): "k2"})
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    merged = score_pairs(truth, {r: "k" for r in truth})
    assert (merged.precision, merged.recall, merged.keys_merging_persons) == (2 / 6, 1.0, 1)
    split = score_pairs(truth, {("a", "1"): "k1", ("a", "3"): "k2", ("a", "4"): "k2"})
    assert (split.precision, split.recall, split.persons_split) == (1.0, 0.5, 1)


def test_the_ceiling_links_only_through_shared_identifiers_and_never_across_people():
    truth = {("crm", "1"): "P1", ("shop", "1"): "P1", ("web", "a"): "P1"}
    truth |= {("crm", "2"): "P2", ("shop", "2"): "P2"}
    observations = [
        ("crm", "1", "email", "x@ex.com"),
        ("shop", "1", "email", "x@ex.com"),
        ("web", "a", "ip", "10.0.0.1"),  # only an IP nobody else of P1 has: unreachable
        ("crm", "2", "phone", "+10000000000"),  # a placeholder both people carry: the oracle keeps
        ("shop", "2", "phone", "+10000000000"),  # P2's two records together and never joins P1
        ("shop", "1", "phone", "+10000000000"),
    ]
    reachable = linkable_components(truth, observations)
    assert reachable[("crm", "1")] == reachable[("shop", "1")] != reachable[("web", "a")]
    assert reachable[("crm", "2")] == reachable[("shop", "2")] != reachable[("shop", "1")]
    ceiling = score_pairs(truth, reachable)
    assert (ceiling.precision, ceiling.recall) == (1.0, 2 / 4)
    predicted = {("crm", "1"): "k1", ("shop", "1"): "k1", ("crm", "2"): "k2", ("shop", "2"): "k3"}
    assert reachable_recall(truth, predicted, reachable) == 1 / 2


def test_same_name_pairs_count_how_often_a_shared_name_is_one_person():
    truth = {("crm", "1"): "P1", ("shop", "1"): "P1", ("shop", "2"): "P2", ("shop", "3"): "P3"}
    predicted = {("crm", "1"): "k1", ("shop", "1"): "k2", ("shop", "2"): "k3", ("shop", "3"): "k4"}
    names = {"k1": ("Sam", "Lee"), "k2": ("sam", "Lee "), "k3": ("Sam", "Lee"), "k4": ("Ana", "Ruiz")}
    assert same_name_pairs(truth, predicted, names) == (3, 1)


def test_identity_matches_the_ground_truth(world: dict):
    """Precision must reach the 0.98 target. Recall is bounded by the data, so it is held against the
    ceiling (what an oracle linking every chain of shared identifiers would reach): the resolver must link
    at least 99% of the pairs the data links. On a two-week world most unlinkable records are devices whose
    owner never signed in (no identify, no userId, no IP shared with an identified device) and CRM
    duplicates sharing no identifier with the person (work email, no phone). Default world (10,000 x 120
    days): P=1.0000 R=0.9773, ceiling 0.9784, reachable 0.9988 (dbt/README.md)."""
    report = identity_report(world["url"], world["ground_truth"])
    scores = report.scores
    print(report.summary())
    assert scores.records > 2000 and scores.true_pairs > 1000
    assert scores.precision >= 0.98, report.summary()
    assert report.reachable_recall >= 0.99, report.summary()
    assert scores.keys_merging_persons <= scores.records * 0.002, report.summary()


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
