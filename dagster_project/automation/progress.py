"""A Dagster logger that prints short progress lines, for people watching `make demo`.

One line when a step starts, one per asset materialized (partitions counted, not listed), failed checks
as they happen, and a closing line per step with its time and how many checks passed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

import dagster as dg

from dagster_project.automation.run_report import check_failure_line, step_failure_reason


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self._materialized: dict[str, Counter] = {}
        self._checks_passed: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            if record.levelno >= logging.WARNING:
                _print(f"  ! {record.getMessage()[:300]}")
            return
        kind = event.event_type_value
        step = event.step_key or ""
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
            self._materialized[step] = Counter()
            _print(f"  > {step}")
        elif kind == "ASSET_MATERIALIZATION":
            asset = event.asset_key.to_user_string()
            counts = self._materialized.setdefault(step, Counter())
            if not counts[asset]:
                _print(f"      materialized {asset}")
            counts[asset] += 1
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if evaluation.passed:
                self._checks_passed[step] += 1
            else:
                _print(f"      check FAILED {check_failure_line(evaluation)}")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            took = time.monotonic() - self._started.get(step, time.monotonic())
            mark = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[kind]
            partitioned = [f"{a} x{n}" for a, n in self._materialized.get(step, Counter()).items() if n > 1]
            extras = partitioned + ([f"{self._checks_passed[step]} checks passed"]
                                    if self._checks_passed[step] else [])
            _print(f"  {mark:>7} {step} ({took:.1f}s)" + (f": {', '.join(extras)}" if extras else ""))
            reason = step_failure_reason(event) if kind == "STEP_FAILURE" else None
            if reason:
                _print(f"          why: {reason}")


@dg.logger(description="Short progress lines per step, asset and failed check: the demo's display.")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.Logger("sendwise.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger
