"""Quality checks after hostile input (issue 11 items 5, 6 and 10): checks over tables that received
hostile records run without crashing, and a fact rule staging quarantines (a negative order_total)
blocks the build only past its share bound, not on the first row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quality_world import execute, failures

from dagster_project.ingestion import loaders

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingestion"))
from hostile_corpus import LINE_CASES  # noqa: E402
from ingestion_helpers import esp_event, web_event  # noqa: E402

DAY = "2025-03-02"  # the day after the clean world's newest file: the checks' window covers it


def test_hostile_records_neither_crash_the_checks_nor_one_bad_row_blocks_them(
    world: str, validate_all, tmp_path: Path
) -> None:
    """One validation run (they are slow) for both: the suites over tables that received the hostile
    corpus run, and a single negative order_total (staging quarantines it) fails no raw check; past
    the bound it does (the "negative order totals" corruption of test_quality_validation)."""
    execute(world, "update raw.shop_orders set order_total = -25 where order_id = 11")
    valid = {
        "web_events": [json.dumps(web_event(f"w-{i}", DAY, userId=str(i))) for i in range(400)],
        "esp_events": [
            json.dumps(esp_event(f"e-{i}", DAY, user_agent="Mozilla/5.0 (X11)")) for i in range(400)
        ],
    }
    with loaders.connect(world) as conn:
        for stream in (loaders.WEB_EVENTS, loaders.ESP_EVENTS):
            hostile = [case.line for case in LINE_CASES if case.stream == stream.name]
            path = tmp_path / stream.folder / f"{DAY}.jsonl"
            path.parent.mkdir(parents=True)
            path.write_bytes(b"\n".join([*hostile, *(line.encode() for line in valid[stream.name])]))
            result = loaders.load_event_partition(conn, stream, tmp_path, DAY)
            assert result.received == len(hostile) + 400

    outcomes = validate_all()

    negative_total = outcomes["raw_shop_orders"].outcome("order_total_not_negative")
    assert negative_total.success and negative_total.unexpected_count == 1
    for name in ("raw_web_events", "raw_esp_events"):
        assert outcomes[name].success, failures(outcomes)  # no error-level check failed
        for outcome in outcomes[name].outcomes:
            assert "range" not in outcome.note and "Error" not in outcome.note, (outcome.check, outcome.note)
    # The one warning left is right: the corpus holds a valid event dated 9999-12-31.
    assert failures(outcomes)["raw_esp_events"] == {"no_events_from_the_future"}
