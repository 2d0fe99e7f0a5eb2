"""Longer fuzz run of the ingestion property checks (tests/ingestion/hostile_strategies.py).

    .venv/bin/python bench/fuzz_ingestion.py --examples 500

Starts its own embedded Postgres in a temp folder, then for each source format (web JSONL, ESP JSONL,
CRM export pages, shop rows on both shop paths) loads N generated sources of hostile records mixed into
valid ones and checks the accounting. Prints, per format, the records tried, loaded and quarantined;
exits 1 on the first failing example (hypothesis prints it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ingestion"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="generated sources per format")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from dagster_project.warehouse import connection, embedded

    root = Path(tempfile.mkdtemp(prefix="sw-fuzz-", dir="/tmp"))
    server = embedded.start(root / "pg")
    try:
        for name in ("fuzz_wh", "fuzz_shop"):
            embedded.ensure_database(server.url("postgres"), name)
        warehouse, shop = (
            connection.with_database(server.url("postgres"), n) for n in ("fuzz_wh", "fuzz_shop")
        )
        connection.ensure_schemas(warehouse)
        return run(args, warehouse, shop, root / "sources")
    finally:
        embedded.stop(root / "pg", mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, warehouse: str, shop: str, source_dir: Path) -> int:
    import hostile_strategies as hs
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
    from ingestion_helpers import SHOP_DDL, execute

    from dagster_project.ingestion import loaders

    with loaders.connect(warehouse) as conn:
        loaders.ensure_tables(conn)
    execute(shop, SHOP_DDL)
    fuzz = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    checks = {
        "web_events": given(hs.web_lines)(
            lambda generated: hs.check_event_file(warehouse, source_dir, loaders.WEB_EVENTS, *generated)
        ),
        "esp_events": given(hs.esp_lines)(
            lambda generated: hs.check_event_file(warehouse, source_dir, loaders.ESP_EVENTS, *generated)
        ),
        "crm_contacts": given(hs.crm_pages())(
            lambda generated: hs.check_crm_export(warehouse, source_dir, *generated)
        ),
        "shop_customers": given(hs.shop_rows, st.booleans())(
            lambda rows, fast: hs.check_shop_table(warehouse, shop, rows, fast)
        ),
    }
    totals: Counter[str] = Counter()
    for name, check in checks.items():
        hs.TALLY.clear()
        started = time.perf_counter()
        try:
            seed(args.seed)(fuzz(check))()
        except Exception as error:  # hypothesis has printed the falsifying example
            print(f"{name}: FAILED after {dict(hs.TALLY)}: {type(error).__name__}: {error}")
            return 1
        print(
            f"{name}: {args.examples} sources, {accounting(hs.TALLY)} ({time.perf_counter() - started:.1f}s)"
        )
        totals.update(hs.TALLY)
    print(f"all formats: {accounting(totals)}")
    return 0


def accounting(tally: Counter[str]) -> str:
    unaccounted = tally["tried"] - tally["loaded"] - tally["quarantined"]
    return (
        f"records tried {tally['tried']}, loaded {tally['loaded']}, quarantined {tally['quarantined']}, "
        f"unaccounted {unaccounted}"
    )


if __name__ == "__main__":
    sys.exit(main())
