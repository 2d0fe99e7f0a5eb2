"""A Dagster logger that prints short progress lines, for people watching `make demo`.

One line when a step starts, one per asset materialized (for day-partitioned loads: how many days were
loaded or unchanged), failed checks with their evidence as they happen, and a closing line per step with
its time, how many checks passed and, when it failed, why. Every step of the plan gets exactly one
closing line: `ok`, `FAILED`, `skipped`, `not run` (an upstream step failed: Dagster logs no step event
for it), and an attempt that will be retried gets a `retry` line. A display problem never fails a step.
`quiet()` sends what else would reach the terminal (dbt's lines, which dagster-dbt echoes to stdout, and
Python warnings) to a log file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project.automation.run_report import (
    check_failure_line,
    error_reason,
    markdown_rows,
    step_failure_reason,
)


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


WARNING_WIDTH = 160
ASSET_LINES_PER_STEP = 3  # a step materializing more (the dbt build) prints a count instead
_DAGSTER_PREFIX = re.compile(r"^\S+ - [0-9a-f-]{36} - \S+ - ")
_NOT_EXECUTING = re.compile(r"^Dependencies for step (?P<step>\S+) (?P<why>.+?)\. Not executing\.$")
_LOAD_WORDS = {"success": "loaded", "unchanged": "unchanged", "missing": "without a file", "failed": "failed"}


def materialization_line(asset: str, metadata: Mapping[str, Any]) -> str:
    """What a materialization did: per-day load statuses for partitioned loads, else rows loaded."""
    partitions = metadata.get("partitions")
    if partitions is not None:
        rows = markdown_rows(str(getattr(partitions, "value", partitions)), limit=None)
        statuses = Counter(_LOAD_WORDS.get(r.get("status", ""), r.get("status", "")) for r in rows)
        if set(statuses) == {"unchanged"}:
            return f"{asset}: {len(rows)} days unchanged"
        return f"{asset}: {len(rows)} days: " + ", ".join(f"{n} {word}" for word, n in statuses.most_common())
    loaded = metadata.get("rows_loaded")
    if loaded is not None:
        return f"materialized {asset} ({getattr(loaded, 'value', loaded):,} rows loaded)"
    return f"materialized {asset}"


def warning_line(message: str, width: int = WARNING_WIDTH) -> str:
    """A warning's first line without Dagster's `job - run id - step - ` prefix, shortened at a word
    boundary (the full text is in the run log)."""
    message = _DAGSTER_PREFIX.sub("", message.strip())
    first = message.splitlines()[0] if message else ""
    if len(first) <= width:
        return first
    return first[:width].rsplit(" ", 1)[0] + " ..."


_CLOSING = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self._materialized: dict[str, Counter] = {}
        self._checks_passed: Counter = Counter()
        self._summarized: set[tuple[str, str]] = set()  # (step, asset) whose partitions were described
        self._warned: set[str] = set()  # warnings are printed once per kind (their first words)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception as error:  # a display bug must not fail the step whose event this is
            _print(f"  ! progress display: {type(error).__name__}: {error}")
            meta = getattr(record, "dagster_meta", None) or {}
            event = meta.get("dagster_event")
            if event is not None and event.event_type_value in _CLOSING:
                _print(f"  {_CLOSING[event.event_type_value]:>7} {event.step_key}")

    def _emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            not_run = _NOT_EXECUTING.match(_DAGSTER_PREFIX.sub("", record.getMessage().strip()))
            if not_run:  # an upstream step failed: the only trace of this step in the log
                _print(f"  {'not run':>7} {not_run['step']}: dependencies {not_run['why']}")
            elif record.levelno >= logging.WARNING:
                line = warning_line(record.getMessage())
                kind = " ".join(line.split()[:6])
                if kind not in self._warned:
                    self._warned.add(kind)
                    _print(f"  ! {line}")
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
            if not counts[asset] and len(counts) < ASSET_LINES_PER_STEP:
                metadata = event.event_specific_data.materialization.metadata
                line = materialization_line(asset, metadata)
                if "partitions" in metadata:
                    self._summarized.add((step, asset))
                _print(f"      {line}")
            counts[asset] += 1
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if evaluation.passed:
                self._checks_passed[step] += 1
            else:
                _print(f"      check FAILED {check_failure_line(evaluation)}")
        elif kind == "STEP_UP_FOR_RETRY":
            took = time.monotonic() - self._started.get(step, time.monotonic())
            why = error_reason(event.event_specific_data.error)  # type: ignore[union-attr]
            _print(f"  {'retry':>7} {step} ({took:.1f}s): {why}")
        elif kind in _CLOSING:
            mark = _CLOSING[kind]
            if step not in self._started:  # skipped without starting: no time to show
                _print(f"  {mark:>7} {step}")
                return
            took = time.monotonic() - self._started[step]
            partitioned = [
                f"{a} x{n}"
                for a, n in self._materialized.get(step, Counter()).items()
                if n > 1 and (step, a) not in self._summarized
            ]
            assets = len(self._materialized.get(step, ()))
            many = [f"{assets} assets materialized"] if assets > ASSET_LINES_PER_STEP else []
            extras = (many or partitioned) + (
                [f"{self._checks_passed[step]} checks passed"] if self._checks_passed[step] else []
            )
            _print(f"  {mark:>7} {step} ({took:.1f}s)" + (f": {', '.join(extras)}" if extras else ""))
            reason = step_failure_reason(event) if kind == "STEP_FAILURE" else None
            if reason:
                _print(f"          why: {reason}")


@dg.logger(description="Short progress lines per step, asset and failed check: the demo's display.")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.Logger("sendwise.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _PlainWriter(io.TextIOBase):
    """Writes text to a file without ANSI colour codes."""

    def __init__(self, handle: io.TextIOBase) -> None:
        self._handle = handle

    def write(self, text: str) -> int:
        self._handle.write(_ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self._handle.flush()


@contextlib.contextmanager
def quiet(log_path: Path) -> Iterator[Path]:
    """Everything written to stdout and every Python warning goes to `log_path` (ANSI codes stripped)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as handle:
        writer = _PlainWriter(handle)

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            writer.write(warnings.formatwarning(message, category, filename, lineno, line))

        saved = warnings.showwarning
        warnings.showwarning = show
        try:
            with contextlib.redirect_stdout(writer):
                yield log_path
        finally:
            warnings.showwarning = saved
