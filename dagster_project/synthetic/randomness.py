"""Seeded randomness: one independent generator per (seed, stream, day) and a stateless 64-bit hash.

Drawing each day from its own stream is what makes 120 days generated at once equal 119 + 1.
"""

from __future__ import annotations

import numpy as np

# Stream keys (never renumber: it would change every world).
TRAITS = 1
HISTORY = 2
PRODUCTS = 3
DAY = 10
CAMPAIGNS = 11

# Per-day sub-streams.
SHOP = 1
WEB = 2
ESP = 3
CRM = 4
MALFORMED = 5

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def hash64(values: np.ndarray | int, salt: int) -> np.ndarray:
    """splitmix64 of `values` mixed with `salt`: stable identifiers without storing them."""
    x = np.asarray(values, dtype=np.uint64) + np.uint64((salt * _GOLDEN) & _MASK64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
