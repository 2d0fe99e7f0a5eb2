"""`sendwise generate`: write (or extend) the synthetic source world.

sendwise generate                                   # 10,000 customers, 120 days ending yesterday
sendwise generate --customers 2000 --days 7 --start 2026-01-01 --out /tmp/world
sendwise generate --days 1 --start <the day after the world's last day>   # extend by a day
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from error


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customers", type=_positive, default=10_000, help="people in the world (default 10000)"
    )
    parser.add_argument("--days", type=_positive, default=120, help="days to generate (default 120)")
    parser.add_argument(
        "--start",
        type=_date,
        default=None,
        help="first day, YYYY-MM-DD (default: today - days, so the world ends yesterday); "
        "the day after an existing world's last day extends it",
    )
    parser.add_argument("--seed", type=_seed, default=42, help="random seed (default 42)")
    parser.add_argument("--out", type=Path, default=None, help="world folder (default: settings.source_dir)")
    parser.add_argument(
        "--shop-url", default=None, help="shop database URL (default: SHOP_URL or the embedded one)"
    )
    parser.add_argument(
        "--malformed-rate",
        type=_rate,
        default=0.0,
        help="share of event-file lines to corrupt, to exercise quarantine (default 0)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a world already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    from dagster_project.settings import get_settings
    from dagster_project.synthetic.ownership import NotOursError
    from dagster_project.synthetic.world import WorldConfig, WorldMismatchError, generate
    from dagster_project.warehouse import connection

    settings = get_settings()
    config = WorldConfig(
        out=(args.out or settings.source_dir).resolve(),
        shop_url=connection.libpq_url(args.shop_url or connection.shop_url(settings)),
        customers=args.customers,
        days=args.days,
        start=args.start,
        seed=args.seed,
        malformed_rate=args.malformed_rate,
        overwrite=args.overwrite,
        shop_is_embedded=not (args.shop_url or settings.shop_url),
    )

    def progress(message: str) -> None:
        print(f"[generate] {message}", file=sys.stderr, flush=True)

    try:
        meta = generate(config, progress=None if args.quiet else progress)
    except (WorldMismatchError, NotOursError) as error:
        print(f"sendwise generate: {error}", file=sys.stderr)
        return 2
    print(f"world {config.out}: {meta['start']} .. {meta['end']}, rows {meta['rows']}")
    return 0
