"""Alerts: a JSON POST to SENDWISE_ALERT_WEBHOOK_URL (`{"text": ...}` works for Slack-style hooks).

The sensors in `sensors.py` call these plain functions: what to say about a failed run or stale sources,
and the POST itself (a webhook that is down is logged, never raised: alerting must not fail a tick).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

STALE_AFTER_HOURS = 36.0  # the event loads run daily: a source older than a day and a half is late
TIMEOUT_SECONDS = 10


def post_alert(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> bool:
    """POST the payload as JSON; True when the webhook answered 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as error:
        log.warning("alert webhook %s failed: %s", url, error)
        return False


def run_failure_alert(job: str, run_id: str, message: str, reasons: Sequence[str]) -> dict[str, Any]:
    """The alert for a failed run: the job, the run and a line per failed step."""
    lines = [f"Sendwise run of {job} failed (run {run_id}): {message}", *(f"- {r}" for r in reasons)]
    return {"text": "\n".join(lines), "kind": "run_failure", "job": job, "run_id": run_id,
            "reasons": list(reasons)}  # fmt: skip


def stale_sources(freshness: pd.DataFrame, max_age_hours: float = STALE_AFTER_HOURS) -> list[str]:
    """Streams whose last successful load is older than `max_age_hours` (or that never loaded)."""
    if freshness.empty:
        return []
    age = pd.to_numeric(freshness["hours_since_success"], errors="coerce")
    stale = freshness[age.isna() | (age > max_age_hours)]
    return sorted(stale["stream"].astype(str))


def stale_sources_alert(freshness: pd.DataFrame, streams: Sequence[str]) -> dict[str, Any]:
    rows = freshness.set_index("stream").loc[list(streams)]
    lines = [
        f"- {stream}: last successful load {row['last_success_at'] or 'never'}"
        f" ({row['hours_since_success'] if pd.notna(row['hours_since_success']) else '-'} h ago)"
        for stream, row in rows.iterrows()
    ]
    title = f"Sendwise sources are stale (no successful load for {STALE_AFTER_HOURS:g} h):"
    return {"text": "\n".join([title, *lines]), "kind": "stale_sources", "streams": list(streams)}
