"""Identity resolution against the synthetic world's ground truth (evaluation only; the pipeline never
reads ground truth). Precision and recall of "same person" pairs over source records, beside two figures
that say how much recall the data allows:

- the ceiling: the recall of an oracle that links two records of one person whenever a chain of shared
  identifiers joins them (any email, phone, IP, userId, ... the pipeline observed, junk included, because
  the oracle knows who is who). No identifier-based resolver can score above it on the same data;
- same-name pairs: how often two resolved customers with the same first and last name are one person,
  i.e. the precision that merging on names would have.

    python -m dagster_project.dbt.evaluation   # uses WAREHOUSE_URL / SENDWISE_SOURCE_DIR via settings
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from math import comb
from pathlib import Path

RECORD_COLUMNS = {
    "shop_customer_id": "shop_customer_id",
    "crm_contact_ids": "crm_contact_id",
    "esp_profile_id": "esp_profile_id",
    "anonymous_ids": "anonymous_id",
}


@dataclass(frozen=True)
class PairScores:
    records: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    persons_split: int
    keys_merging_persons: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    def summary(self) -> str:
        return (
            f"records={self.records:,} true_pairs={self.true_pairs:,} "
            f"predicted_pairs={self.predicted_pairs:,} precision={self.precision:.4f} "
            f"recall={self.recall:.4f} persons_split={self.persons_split} "
            f"keys_merging_persons={self.keys_merging_persons}"
        )


def ground_truth_records(people_csv: Path) -> dict[tuple[str, str], str]:
    """(record_type, record_id) -> person_id for every source record the ground truth lists."""
    owners: dict[tuple[str, str], str] = {}
    with people_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for column, record_type in RECORD_COLUMNS.items():
                for record_id in filter(None, (row.get(column) or "").split(";")):
                    owners[(record_type, record_id.strip())] = row["person_id"]
    return owners


def score_pairs(truth: dict[tuple[str, str], str], predicted: dict[tuple[str, str], str]) -> PairScores:
    """Pair precision/recall; a record without a predicted key counts as a person of its own."""
    keys = {record: predicted.get(record) or f"unresolved:{record}" for record in truth}
    by_person, by_key, by_both = Counter(truth.values()), Counter(keys.values()), Counter()
    for record, person in truth.items():
        by_both[(person, keys[record])] += 1
    persons_per_key = Counter(key for _, key in by_both)
    keys_per_person = Counter(person for person, _ in by_both)
    return PairScores(
        records=len(truth),
        true_pairs=sum(comb(n, 2) for n in by_person.values()),
        predicted_pairs=sum(comb(n, 2) for n in by_key.values()),
        correct_pairs=sum(comb(n, 2) for n in by_both.values()),
        persons_split=sum(1 for n in keys_per_person.values() if n > 1),
        keys_merging_persons=sum(1 for n in persons_per_key.values() if n > 1),
    )


def linkable_components(
    truth: dict[tuple[str, str], str], observations: Iterable[tuple[str, str, str, str]]
) -> dict[tuple[str, str], str]:
    """The oracle's partition: records of one person joined by any chain of shared identifier values.
    `observations` are (record_type, record_id, identifier_type, identifier_value)."""
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for record_type, record_id, identifier_type, identifier_value in observations:
        record = (record_type, record_id)
        if record in truth:  # identifiers are scoped to the owner: the oracle never links two people
            parent[root(record)] = root((truth[record], identifier_type, identifier_value))
    return {record: str(root(record)) for record in truth}


def reachable_recall(
    truth: dict[tuple[str, str], str],
    predicted: dict[tuple[str, str], str],
    reachable: dict[tuple[str, str], str],
) -> float:
    """Share of the pairs the data links (the oracle's pairs) that the resolver linked too."""
    both = {record: f"{reachable[record]}|{predicted.get(record) or record}" for record in truth}
    pairs = Counter(reachable.values())
    linked = Counter(both.values())
    reachable_pairs = sum(comb(n, 2) for n in pairs.values())
    return sum(comb(n, 2) for n in linked.values()) / reachable_pairs if reachable_pairs else 1.0


@dataclass(frozen=True)
class IdentityReport:
    scores: PairScores
    ceiling: PairScores
    reachable_recall: float
    same_name_pairs: int
    same_name_pairs_same_person: int

    def summary(self) -> str:
        share = (
            self.same_name_pairs_same_person / self.same_name_pairs if self.same_name_pairs else float("nan")
        )
        return (
            f"{self.scores.summary()}\n"
            f"ceiling_recall={self.ceiling.recall:.4f} (the best an identifier-based resolver can do here) "
            f"reachable_recall={self.reachable_recall:.4f} (share of the linkable pairs it linked)\n"
            f"same_name_customer_pairs={self.same_name_pairs:,} of which same person="
            f"{self.same_name_pairs_same_person:,} ({share:.1%}: the precision of merging on names)"
        )


def same_name_pairs(
    truth: dict[tuple[str, str], str],
    predicted: dict[tuple[str, str], str],
    names: dict[str, tuple[str, str]],
) -> tuple[int, int]:
    """Pairs of resolved customers sharing a (case-folded) first and last name, and how many of those
    pairs are one person (by the person owning most of each customer's records)."""
    owners: dict[str, Counter] = {}
    for record, person in truth.items():
        key = predicted.get(record)
        if key is not None:
            owners.setdefault(key, Counter())[person] += 1
    by_name: dict[tuple[str, str], list[str]] = {}
    for key, (first, last) in names.items():
        if key in owners:
            by_name.setdefault((first.strip().lower(), last.strip().lower()), []).append(key)
    pairs = same = 0
    for keys in by_name.values():
        persons = Counter(owners[key].most_common(1)[0][0] for key in keys)
        pairs += comb(len(keys), 2)
        same += sum(comb(n, 2) for n in persons.values())
    return pairs, same


def identity_report(warehouse_url: str, ground_truth_dir: Path) -> IdentityReport:
    import psycopg

    from dagster_project.warehouse.connection import libpq_url

    truth = ground_truth_records(ground_truth_dir / "people.csv")
    with psycopg.connect(libpq_url(warehouse_url)) as conn:
        predicted = {
            (record_type, record_id): key
            for record_type, record_id, key in conn.execute(
                "select record_type, record_id, customer_key from intermediate.int_identity__record_keys"
            ).fetchall()
        }
        observations = conn.execute(
            "select record_type, record_id, identifier_type, identifier_value "
            "from intermediate.int_identity__observations"
        ).fetchall()
        names = {
            key: (first, last)
            for key, first, last in conn.execute(
                "select customer_key, first_name, last_name from marts.dim_customers "
                "where first_name is not null and last_name is not null"
            ).fetchall()
        }
    reachable = linkable_components(truth, observations)
    pairs, same = same_name_pairs(truth, predicted, names)
    return IdentityReport(
        scores=score_pairs(truth, predicted),
        ceiling=score_pairs(truth, reachable),
        reachable_recall=reachable_recall(truth, predicted, reachable),
        same_name_pairs=pairs,
        same_name_pairs_same_person=same,
    )


def main() -> None:
    from dagster_project.settings import get_settings
    from dagster_project.warehouse.connection import warehouse_url

    settings = get_settings()
    print(identity_report(warehouse_url(settings), settings.ground_truth_dir).summary())


if __name__ == "__main__":
    main()
