"""The generator's output for a given seed is pinned: faster code must write the very same world.

The digests were recorded from the generator before it was optimised (issue 12); the demo's figures,
the identity and ML tests all rest on the default world, so a change here is a change of world. When
the world is changed on purpose, record the new digests and say so in the commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest
from synthetic_helpers import SHOP_TABLES, file_digests, make_world, new_database

GOLDEN = {  # (customers, days, seed, malformed_rate) -> sha256 of the files and of the shop's rows
    (300, 3, 42, 0.0): "d7dfb1e750b44b8526afe68a1b4b4ffd9b772fdc757c6e0196b73bfd82208fa9",
    (400, 9, 7, 0.03): "51003c9c1e44090e874684c7590081071ad98aad4cc7d2add7aeb4a4e738d5e7",
}


def world_digest(out: Path, shop_url: str) -> str:
    digest = hashlib.sha256()
    for name, file_sha in file_digests(out).items():
        digest.update(f"{name} {file_sha}\n".encode())
    with psycopg.connect(shop_url) as conn, conn.cursor() as cur:
        for table, key in SHOP_TABLES.items():
            with cur.copy(f"copy (select * from shop.{table} order by {key}) to stdout") as copy:
                for block in copy:
                    digest.update(bytes(block))
    return digest.hexdigest()


@pytest.mark.parametrize(("customers", "days", "seed", "malformed_rate"), list(GOLDEN))
def test_world_of_a_seed_is_byte_identical_to_the_recorded_one(
    pg_server, tmp_path, customers, days, seed, malformed_rate
):
    shop_url = new_database(pg_server)
    make_world(tmp_path / "w", shop_url, customers=customers, days=days, seed=seed,
               malformed_rate=malformed_rate)  # fmt: skip
    assert world_digest(tmp_path / "w", shop_url) == GOLDEN[(customers, days, seed, malformed_rate)]
