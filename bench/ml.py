"""ML bench: send-time hit rates of the model and both baselines, segmentation ARI of KMeans and the RFM
baseline, and run times, at 100k and 1M customers.

    .venv/bin/python bench/ml.py                       # synthetic marts, 100,000 and 1,000,000 customers
    .venv/bin/python bench/ml.py --sizes 20000 --days 56
    .venv/bin/python bench/ml.py --warehouse "$URL" --ground-truth .sendwise/world/ground_truth

Default data: mart-shaped frames synthesised in memory by `ml.synthetic` (fct_customer_features,
dim_customers time zones, fct_email_events with deliveries, real and machine opens, clicks; planted
archetypes and preferred hours); the full pipeline (world generator -> raw -> dbt -> marts) is not run,
so the figures time the ML itself. With --warehouse the marts built by the real pipeline are read
(read time printed separately) and scored against that world's ground truth.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from ml.config import BacktestConfig, SegmentationConfig, SendTimeConfig  # noqa: E402
from ml.evaluation import (  # noqa: E402
    backtest_send_time,
    ground_truth_agreement,
    segmentation_quality,
    truth_by_customer,
)
from ml.segmentation import fit_segments  # noqa: E402
from ml.send_time import fit_send_time, next_send_slots, prepare_engagement  # noqa: E402
from ml.synthetic import synthesize_marts  # noqa: E402


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


class Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        self.times[name] = time.perf_counter() - started
        print(f"  {name:<28} {self.times[name]:8.2f} s   (peak RSS {_peak_rss_gb():.1f} GB)", flush=True)
        return result


@dataclass
class Marts:
    label: str
    features: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    people: pd.DataFrame
    as_of: pd.Timestamp


def synthetic_marts(size: int, args: argparse.Namespace, timer: Timer) -> Marts:
    world = timer(
        "synthesise marts",
        synthesize_marts,
        size,
        days=args.days,
        seed=args.seed,
        campaigns_per_week=args.campaigns_per_week,
        string_keys=size <= 200_000,
    )
    label = f"synthetic marts: {size:,} customers, {args.days} days, {args.campaigns_per_week} campaigns/week"
    return Marts(label, world.features, world.customers, world.email_events, world.people, world.as_of)


def warehouse_marts(args: argparse.Namespace, timer: Timer) -> Marts:
    import psycopg

    from dagster_project.ml import io

    def read() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        with psycopg.connect(args.warehouse) as conn:
            return io.read_features(conn), io.read_customers(conn), io.read_email_events(conn)

    features, customers, events = timer("read marts (COPY)", read)
    people = io.read_ground_truth(args.ground_truth) if args.ground_truth else None
    if people is None:
        raise SystemExit(f"no people.csv under {args.ground_truth}: ARI and agreement need the ground truth")
    customers = customers.sort_values("customer_key", ignore_index=True)
    as_of = events["event_at"].max()
    return Marts(f"warehouse marts: {len(features):,} customers", features, customers, events, people, as_of)


def measure(marts: Marts, args: argparse.Namespace, timer: Timer) -> dict[str, float]:
    print(f"== {marts.label} ==", flush=True)
    counts = marts.events["event_type"].value_counts().to_dict()
    machine = int(marts.events["is_machine_open"].fillna(False).astype(bool).sum())
    print(f"  email events: {len(marts.events):,} {counts} (machine opens {machine:,})")

    segmentation = SegmentationConfig(n_threads=args.threads)
    segments = timer("segment (fit + assign all)", fit_segments, marts.features, segmentation)
    metrics = segments.metrics
    print(
        f"  k={metrics['k']} silhouette={metrics['silhouette']:.3f} stability={metrics['stability_ari']:.3f}"
    )
    print("  k scores:\n    " + segments.k_scores.round(3).to_string(index=False).replace("\n", "\n    "))
    print(
        "  "
        + ", ".join(
            f"{name} ({size:,})"
            for name, size in zip(segments.profiles["segment_name"], segments.profiles["size"], strict=True)
        )
    )
    truth = truth_by_customer(marts.people, marts.customers)
    quality = segmentation_quality(segments.assignments, marts.features, truth)
    print(
        f"  ARI vs archetypes: KMeans {quality['ari_kmeans']:.3f}"
        f"   RFM-quintile baseline {quality['ari_rfm_baseline']:.3f}"
    )

    send = SendTimeConfig()
    engagement = timer("send time: prepare events", prepare_engagement, marts.events, marts.customers, send)
    fitted = timer(
        "send time: fit + predict", fit_send_time, engagement, marts.customers, segments.assignments, send
    )
    timer(
        "send time: next UTC slots",
        next_send_slots,
        fitted.predictions["best_hour_of_week"].to_numpy(),
        marts.customers["timezone"],
        marts.as_of,
    )
    print(f"  source levels: {fitted.model.metrics['source_levels']}")
    backtest = timer(
        "send time: backtest",
        backtest_send_time,
        engagement,
        marts.customers,
        segments.assignments,
        marts.as_of,
        send,
        BacktestConfig(test_days=args.test_days),
    )
    table = backtest["table"].pivot(
        index="method", columns="group", values=["hit_rate_1h", "hit_rate_3h_window"]
    )
    print(f"  backtest (cut-off {backtest['cutoff']}, test responses {backtest['test_responses']:,}):")
    print("    " + table.round(4).to_string().replace("\n", "\n    "))
    agreement = ground_truth_agreement(backtest["predictions"], engagement.customer_keys, truth)
    print(f"  ground truth within +/-1 h (fit before cut-off): {agreement}\n")
    methods = ("model", "user_most_frequent_hour", "global_best_hour")
    return {
        "customers": len(marts.features),
        "segment_s": timer.times["segment (fit + assign all)"],
        "send_time_s": timer.times["send time: prepare events"] + timer.times["send time: fit + predict"],
        "ari_kmeans": quality["ari_kmeans"],
        "ari_rfm": quality["ari_rfm_baseline"],
        **{f"{m}_1h": backtest["summary"][f"{m}.all.hit_rate_1h"] for m in methods},
        **{f"{m}_lt5_1h": backtest["summary"][f"{m}.lt5_past.hit_rate_1h"] for m in methods},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--campaigns-per-week", type=float, default=2.0)
    parser.add_argument("--test-days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for KMeans")
    parser.add_argument("--warehouse", help="read the real pipeline's marts from this Postgres URL instead")
    parser.add_argument("--ground-truth", type=Path, help="with --warehouse: the world's ground_truth folder")
    args = parser.parse_args()
    if args.warehouse:
        rows = [measure(warehouse_marts(args, timer := Timer()), args, timer)]
    else:
        print("Data: synthetic marts (ml.synthetic); the full pipeline is not run.\n")
        rows = []
        for size in args.sizes:
            timer = Timer()
            rows.append(measure(synthetic_marts(size, args, timer), args, timer))
    print("== summary ==")
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
