"""`sendwise status`: the health report in the terminal (sources, loads, quality, ESP, triggers, profiles,
warehouse size, slowest dbt models)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the report at run time: `sendwise --help` stays fast
    import pandas as pd

MAX_ROWS = 15


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days", type=int, default=7, help="days of per-day history to show (loads, quality, triggers)"
    )


def render(frames: dict[str, pd.DataFrame], days: int = 7) -> str:
    """The report as text: a titled table per section, or a note when a section has no data yet."""
    blocks = []
    for title, frame in frames.items():
        if "day" in frame.columns and not frame.empty:
            recent = sorted(frame["day"].unique())[-days:]
            frame = frame[frame["day"].isin(recent)]
        if frame.empty:
            body = "  (no data yet)"
        else:
            shown = frame.tail(MAX_ROWS) if "day" in frame.columns else frame.head(MAX_ROWS)
            shown = shown.apply(_minutes)
            body = shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")
            body = "\n".join("  " + line for line in body.splitlines())
        blocks.append(f"{title}\n{body}")
    return "\n\n".join(blocks)


def _minutes(column: pd.Series) -> pd.Series:
    """Timestamps to the minute (UTC), the rest as it is."""
    if column.map(lambda v: hasattr(v, "strftime") and hasattr(v, "hour")).any():
        return column.map(lambda v: v.strftime("%Y-%m-%d %H:%M") if hasattr(v, "hour") else v)
    return column


def run(args: argparse.Namespace) -> int:
    import psycopg

    from dagster_project.health.report import health_frames
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    url = connection.warehouse_url(get_settings())
    with psycopg.connect(connection.libpq_url(url)) as conn:
        frames = health_frames(conn)
    print(f"Sendwise health report of {mask_url(url)}")
    print()
    print(render(frames, days=args.days))
    return 0
