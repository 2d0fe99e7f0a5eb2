"""Orders drawn from a BG/NBD process with known parameters (per day), for the CLV tests: the numbers the
tests expect come from these parameters, not from the model under test."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_orders(
    n: int,
    r: float = 0.8,
    alpha: float = 20.0,
    a: float = 1.0,
    b: float = 4.0,
    days: int = 240,
    start: str = "2025-01-01",
    seed: int = 0,
    categories: tuple[str, ...] = ("books", "garden", "toys"),
) -> pd.DataFrame:
    """First orders uniform over the first half; then Poisson(lambda) purchases, each followed by drop-out
    with probability p; lambda ~ Gamma(r, alpha) per day, p ~ Beta(a, b). Values ~ Gamma(4, scale 12)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    first = rng.uniform(0, days / 2, n)
    rows_key, rows_time = [list(range(n))], [first]
    now, alive = first.copy(), np.ones(n, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1 / np.maximum(lam, 1e-12))
        alive &= now < days
        rows_key.append(np.flatnonzero(alive))
        rows_time.append(now[alive])
        alive &= rng.random(n) >= p
    keys = np.concatenate(rows_key)
    times = np.concatenate(rows_time)
    stamp = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(times, unit="D")
    return pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(keys))],
            "customer_key": [f"c{k:05d}" for k in keys],
            "ordered_at": stamp,
            "order_total": np.round(rng.gamma(4, 12, len(keys)), 2),
            "is_completed": True,
            "categories": rng.choice(categories, len(keys)),
        }
    )
