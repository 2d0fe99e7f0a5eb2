"""Fit and score BG/NBD + Gamma-Gamma at a million customers (summaries drawn from the model itself).

.venv/bin/python bench/clv.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's ml/, not bench/ml.py

import numpy as np  # noqa: E402

from ml import clv  # noqa: E402

TRUE = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}  # per week, close to CDNOW


def draw_summary(n: int, weeks: float, seed: int) -> dict[str, np.ndarray]:
    """Per customer: BG/NBD purchases from a first purchase uniform over the first half, continuous time."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    first = rng.uniform(0, weeks / 2, n)
    T = weeks - first
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1 / np.maximum(lam, 1e-12))
        alive &= now < T
        x[alive] += 1
        t_x[alive] = now[alive]
        alive &= rng.random(n) >= p
    # mean of x transactions, each Gamma(p, nu), nu ~ Gamma(q, rate gamma): zbar ~ Gamma(p x, rate nu x)
    nu = rng.gamma(3.7, 1 / 15.0, n)
    spend = np.full(n, np.nan)
    repeat = x > 0
    spend[repeat] = rng.gamma(6.0 * x[repeat], 1 / (nu[repeat] * x[repeat]))
    # whole days, as repeat_purchase_summary gives them (and as a warehouse summary repeats them)
    return {"frequency": x, "recency": np.floor(t_x * 7), "T": np.floor(T * 7), "monetary": spend}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=float, default=52.0)
    args = parser.parse_args()
    started = time.perf_counter()
    s = draw_summary(args.customers, args.weeks, seed=1)
    print(f"drew {args.customers:,} summaries in {time.perf_counter() - started:.1f} s")
    timings = {}
    t = time.perf_counter()
    fit = clv.fit_bgnbd(s["frequency"], s["recency"], s["T"], unit_days=7)
    timings["fit BG/NBD"] = time.perf_counter() - t
    t = time.perf_counter()
    spend = clv.fit_gamma_gamma(s["frequency"], s["monetary"])
    timings["fit Gamma-Gamma"] = time.perf_counter() - t
    t = time.perf_counter()
    alive = clv.p_alive(fit, s["frequency"], s["recency"], s["T"])
    churn = clv.p_no_purchase(fit, 90, s["frequency"], s["recency"], s["T"])
    value = clv.expected_order_value(spend, s["frequency"], s["monetary"])
    clv_365 = clv.customer_lifetime_value(fit, value, s["frequency"], s["recency"], s["T"], 365)
    discounted = clv.customer_lifetime_value(fit, value, s["frequency"], s["recency"], s["T"], 365, 0.1, 30)
    timings["score (P(alive), churn, order value, CLV, discounted CLV: 14 expectations)"] = (
        time.perf_counter() - t
    )
    print(
        f"BG/NBD   r={fit.r:.3f} alpha={fit.alpha:.3f} a={fit.a:.3f} b={fit.b:.3f} "
        f"(drawn from {TRUE}) converged={fit.converged} iterations={fit.iterations}"
    )
    print(f"Gamma-Gamma p={spend.p:.2f} q={spend.q:.2f} gamma={spend.gamma:.2f} (drawn from 6, 3.7, 15)")
    print(
        f"mean P(alive)={alive.mean():.3f} churn={churn.mean():.3f} CLV={np.nanmean(clv_365):.2f} "
        f"discounted={np.nanmean(discounted):.2f}"
    )
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s")
    print(f"total fit + score: {sum(timings.values()):.2f} s")


if __name__ == "__main__":
    main()
