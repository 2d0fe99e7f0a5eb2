"""ML bench: send-time hit rates of the model and both baselines, segmentation ARI of KMeans and the RFM
baseline, and run times, at 100k and 1M customers.

    .venv/bin/python bench/ml.py                       # 100,000 and 1,000,000 customers
    .venv/bin/python bench/ml.py --sizes 20000 --days 56

Data: mart-shaped frames synthesised in memory by `ml.synthetic` (fct_customer_features, dim_customers
time zones, fct_email_events with deliveries, real and machine opens, clicks; planted archetypes and
preferred hours). The full pipeline (world generator -> raw -> dbt -> marts) is not run here, so load and
read times are not included; the figures time the ML itself, which is what the assets add on top.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
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


def bench(size: int, args: argparse.Namespace) -> dict[str, float]:
    print(
        f"\n== {size:,} customers, {args.days} days, {args.campaigns_per_week} campaigns/week ==", flush=True
    )
    timer = Timer()
    world = timer(
        "synthesise marts",
        synthesize_marts,
        size,
        days=args.days,
        seed=args.seed,
        campaigns_per_week=args.campaigns_per_week,
        string_keys=size <= 200_000,
    )
    counts = world.email_events["event_type"].value_counts().to_dict()
    machine = int(world.email_events["is_machine_open"].sum())
    print(f"  email events: {len(world.email_events):,} {counts} (machine opens {machine:,})")

    segmentation = SegmentationConfig(n_threads=args.threads)
    segments = timer("segment (fit + assign all)", fit_segments, world.features, segmentation)
    metrics = segments.metrics
    print(
        f"  k={metrics['k']} silhouette={metrics['silhouette']:.3f} stability={metrics['stability_ari']:.3f}"
    )
    print("  k scores:\n" + segments.k_scores.round(3).to_string(index=False).replace("\n", "\n    "))
    print(
        "  "
        + ", ".join(
            f"{name} ({size:,})"
            for name, size in zip(segments.profiles["segment_name"], segments.profiles["size"], strict=True)
        )
    )
    truth = truth_by_customer(world.people, world.customers)
    quality = segmentation_quality(segments.assignments, world.features, truth)
    print(
        f"  ARI vs archetypes: KMeans {quality['ari_kmeans']:.3f}"
        f"   RFM-quintile baseline {quality['ari_rfm_baseline']:.3f}"
    )

    send = SendTimeConfig()
    engagement = timer(
        "send time: prepare events", prepare_engagement, world.email_events, world.customers, send
    )
    fitted = timer(
        "send time: fit + predict", fit_send_time, engagement, world.customers, segments.assignments, send
    )
    timer(
        "send time: next UTC slots",
        next_send_slots,
        fitted.predictions["best_hour_of_week"].to_numpy(),
        world.customers["timezone"],
        world.as_of,
    )
    print(f"  source levels: {fitted.model.metrics['source_levels']}")
    backtest = timer(
        "send time: backtest",
        backtest_send_time,
        engagement,
        world.customers,
        segments.assignments,
        world.as_of,
        send,
        BacktestConfig(test_days=args.test_days),
    )
    table = backtest["table"].pivot(
        index="method", columns="group", values=["hit_rate_1h", "hit_rate_3h_window"]
    )
    print(f"  backtest (cut-off {backtest['cutoff']}, test responses {backtest['test_responses']:,}):")
    print("    " + table.round(4).to_string().replace("\n", "\n    "))
    agreement = ground_truth_agreement(backtest["predictions"], engagement.customer_keys, truth)
    print(f"  ground truth within +/-1 h (fit before cut-off): {agreement}")
    return {
        "customers": size,
        "segment_s": timer.times["segment (fit + assign all)"],
        "send_time_s": timer.times["send time: prepare events"] + timer.times["send time: fit + predict"],
        "ari_kmeans": quality["ari_kmeans"],
        "ari_rfm": quality["ari_rfm_baseline"],
        **{
            f"{m}_1h": backtest["summary"][f"{m}.all.hit_rate_1h"]
            for m in ("model", "user_most_frequent_hour", "global_best_hour")
        },
        **{
            f"{m}_lt5_1h": backtest["summary"][f"{m}.lt5_past.hit_rate_1h"]
            for m in ("model", "user_most_frequent_hour", "global_best_hour")
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--campaigns-per-week", type=float, default=2.0)
    parser.add_argument("--test-days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for KMeans")
    args = parser.parse_args()
    print(__doc__.split("\n\n")[2].replace("\n", " "))
    rows = [bench(size, args) for size in args.sizes]
    print("\n== summary ==")
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
