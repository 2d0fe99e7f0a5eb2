"""Identity resolution against the synthetic world's ground truth (evaluation only; the pipeline never
reads ground truth). Precision and recall of "same person" pairs over source records.

    python -m dagster_project.dbt.evaluation   # uses WAREHOUSE_URL / SENDWISE_SOURCE_DIR via settings
"""

from __future__ import annotations

import csv
from collections import Counter
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


def predicted_keys(warehouse_url: str) -> dict[tuple[str, str], str]:
    import psycopg

    from dagster_project.warehouse.connection import libpq_url

    with psycopg.connect(libpq_url(warehouse_url)) as conn:
        rows = conn.execute(
            "select record_type, record_id, customer_key from intermediate.int_identity__record_keys"
        ).fetchall()
    return {(record_type, record_id): key for record_type, record_id, key in rows}


def evaluate(warehouse_url: str, ground_truth_dir: Path) -> PairScores:
    return score_pairs(ground_truth_records(ground_truth_dir / "people.csv"), predicted_keys(warehouse_url))


def main() -> None:
    from dagster_project.settings import get_settings
    from dagster_project.warehouse.connection import warehouse_url

    settings = get_settings()
    print(evaluate(warehouse_url(settings), settings.ground_truth_dir).summary())


if __name__ == "__main__":
    main()
