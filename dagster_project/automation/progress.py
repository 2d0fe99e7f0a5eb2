"""A Dagster logger that prints one short line per step and asset, for people watching `make demo`."""

from __future__ import annotations

import logging
import sys
import time

import dagster as dg

_SHOWN = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION",
          "STEP_SKIPPED"}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            if record.levelno >= logging.WARNING:
                print(f"  ! {record.getMessage()[:300]}", file=sys.stderr, flush=True)
            return
        kind = event.event_type_value
        if kind not in _SHOWN:
            return
        step = event.step_key or ""
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
            line = f"  > {step}"
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            took = time.monotonic() - self._started.get(step, time.monotonic())
            mark = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[kind]
            line = f"  {mark:>7} {step} ({took:.1f}s)"
        elif kind == "ASSET_MATERIALIZATION":
            line = f"      materialized {event.asset_key.to_user_string()}"
        else:
            evaluation = event.event_specific_data
            verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
            line = f"      check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {verdict}"
        print(line, file=sys.stderr, flush=True)


@dg.logger(description="One line per step, asset and check: the demo's progress display.")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.Logger("sendwise.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger
