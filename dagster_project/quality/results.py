"""Validation results and row-count baselines, kept in the warehouse (schema ops).

- ops.validation_results: one row per suite validation (suite, asset, run id, time, success, stats,
  and the per-check outcomes as jsonb), so quality over time is queryable.
- ops.quality_row_counts: the row count seen by every validation; the baseline for the next run is the
  newest *accepted* count (a truncated load that failed its row-count check never becomes the baseline).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

_DDL = """
create schema if not exists ops;
create table if not exists ops.validation_results (
    validation_id bigserial primary key,
    suite text not null,
    asset text not null,
    table_name text not null,
    run_id text not null,
    validated_at timestamptz not null,
    success boolean not null,
    evaluated integer not null,
    failed_errors integer not null,
    failed_warnings integer not null,
    row_count bigint,
    duration_seconds double precision not null,
    statistics jsonb not null,
    results jsonb not null,
    data_docs_page text
);
create index if not exists validation_results_suite_time on ops.validation_results (suite, validated_at desc);
create table if not exists ops.quality_row_counts (
    suite text not null,
    table_name text not null,
    run_id text not null,
    row_count bigint not null,
    accepted boolean not null,
    recorded_at timestamptz not null default now()
);
create index if not exists quality_row_counts_suite_time on ops.quality_row_counts (suite, recorded_at desc);
create table if not exists ops.quality_watermarks (
    suite text primary key,
    since timestamptz not null,
    set_at timestamptz not null
);
alter table ops.quality_watermarks add column if not exists checked_until timestamptz;
alter table ops.quality_watermarks add column if not exists passed_until timestamptz;
"""


@dataclass
class CheckOutcome:
    """The outcome of one expectation = one Dagster asset check."""

    check: str
    severity: str
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    note: str = ""
    effective_severity: str | None = None
    """Severity of this result when it differs from the declared one (e.g. no load log yet: warn)."""

    @property
    def result_severity(self) -> str:
        return self.effective_severity or self.severity


@dataclass
class SuiteOutcome:
    suite: str
    asset: str
    table: str
    run_id: str
    validated_at: datetime
    duration_seconds: float
    outcomes: list[CheckOutcome]
    row_count: int | None = None
    data_docs_page: str | None = None

    @property
    def failed_errors(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.result_severity == "error"]

    @property
    def failed_warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.result_severity == "warn"]

    @property
    def success(self) -> bool:
        return not self.failed_errors

    def outcome(self, check: str) -> CheckOutcome:
        return next(o for o in self.outcomes if o.check == check)

    def statistics(self) -> dict[str, Any]:
        evaluated = len(self.outcomes)
        successful = sum(o.success for o in self.outcomes)
        return {
            "evaluated": evaluated,
            "successful": successful,
            "failed_errors": len(self.failed_errors),
            "failed_warnings": len(self.failed_warnings),
            "success_percent": round(100.0 * successful / evaluated, 2) if evaluated else 100.0,
        }


def ensure_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        # Concurrent check steps may race on `create table if not exists`; serialise them.
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('sendwise.quality.ddl'))"))
        for statement in filter(str.strip, _DDL.split(";")):
            conn.execute(sa.text(statement))


def previous_row_count(engine: sa.Engine, suite: str, run_id: str) -> int | None:
    """The newest accepted row count of a suite from another run (None before the first run)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "select row_count from ops.quality_row_counts where suite = :suite and accepted "
                "and run_id <> :run_id order by recorded_at desc limit 1"
            ),
            {"suite": suite, "run_id": run_id},
        ).scalar()


def row_count_floor(previous: int | None, max_shrink: float) -> int:
    """The smallest row count allowed after a run that had `previous` rows."""
    if previous is None:
        return 0
    return math.ceil(previous * (1.0 - max_shrink))


def record(engine: sa.Engine, outcome: SuiteOutcome, row_count_accepted: bool | None) -> None:
    """Persist one suite validation (and its row count, when the suite has a row-count check)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into ops.validation_results (suite, asset, table_name, run_id, validated_at, "
                "success, evaluated, failed_errors, failed_warnings, row_count, duration_seconds, "
                "statistics, results, data_docs_page) values (:suite, :asset, :table_name, :run_id, "
                ":validated_at, :success, :evaluated, :failed_errors, :failed_warnings, :row_count, "
                ":duration, cast(:statistics as jsonb), cast(:results as jsonb), :page)"
            ),
            {
                "suite": outcome.suite,
                "asset": outcome.asset,
                "table_name": outcome.table,
                "run_id": outcome.run_id,
                "validated_at": outcome.validated_at,
                "success": outcome.success,
                "evaluated": len(outcome.outcomes),
                "failed_errors": len(outcome.failed_errors),
                "failed_warnings": len(outcome.failed_warnings),
                "row_count": outcome.row_count,
                "duration": outcome.duration_seconds,
                "statistics": json.dumps(outcome.statistics()),
                "results": to_json([asdict(o) for o in outcome.outcomes]),
                "page": outcome.data_docs_page,
            },
        )
        if outcome.row_count is not None and row_count_accepted is not None:
            conn.execute(
                sa.text(
                    "insert into ops.quality_row_counts (suite, table_name, run_id, row_count, accepted) "
                    "values (:suite, :table_name, :run_id, :row_count, :accepted)"
                ),
                {
                    "suite": outcome.suite,
                    "table_name": outcome.table,
                    "run_id": outcome.run_id,
                    "row_count": outcome.row_count,
                    "accepted": row_count_accepted,
                },
            )


def latest_results(engine: sa.Engine) -> list[dict[str, Any]]:
    """The newest validation of every suite, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select distinct on (suite) suite, asset, table_name, run_id, validated_at, success, "
                "evaluated, failed_errors, failed_warnings, row_count, duration_seconds, results, "
                "data_docs_page from ops.validation_results order by suite, validated_at desc"
            )
        ).mappings()
        return sorted((dict(r) for r in rows), key=lambda r: r["suite"])


def history(engine: sa.Engine, limit_per_suite: int = 20) -> dict[str, list[bool]]:
    """Success flags of the last validations of each suite, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select suite, success from (select suite, success, validated_at, row_number() over "
                "(partition by suite order by validated_at desc) as n from ops.validation_results) r "
                "where n <= :limit order by suite, validated_at"
            ),
            {"limit": limit_per_suite},
        )
        out: dict[str, list[bool]] = {}
        for suite, success in rows:
            out.setdefault(suite, []).append(success)
        return out


def to_json(value: Any) -> str:
    return json.dumps(value, default=str)
