"""Running a suite with Great Expectations (GX Core 1.x) against the warehouse.

Imports GX (4-5 s), so only ever import this module inside a check body, never at definition load.

Every process and thread has its own GX context (ephemeral, cached per folder and thread): expectation
suites, data sources, validation definitions and checkpoints live in its memory only, rebuilt from
YAML, so concurrent runs (Dagster runs a step per process) never see each other's suites; on a shared
file store they failed each other (`ExpectationSuite ... has changed since it has last been saved`).
Only validation results are files (`<home>/gx/validations`, one per run and suite) for the Data Docs
site `<home>/data_docs`. Every guarded table gets a Postgres data source, a table asset with a
whole-table batch definition, an expectation suite built from `expectations/<suite>.yml`, a validation
definition and a checkpoint.
Quarantine checks validate a query asset over ops.load_log in the same checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa

from dagster_project.privacy.masking import mask_sample
from dagster_project.quality import report, results
from dagster_project.quality.suites import (
    LOAD_LOG_KINDS,
    QUARANTINE_SHARE_KINDS,
    TABLE_LEVEL_KINDS,
    WATERMARKS_TABLE,
    ExpectationSpec,
    SuiteSpec,
    apply_thresholds,
    load_suites,
)
from dagster_project.settings import Settings
from dagster_project.warehouse import connection

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import Column  # noqa: E402

log = logging.getLogger(__name__)

SAMPLE_SIZE = 5
_GX_SEVERITY = {"error": "critical", "warn": "warning"}
_contexts: dict[tuple[Path, Path, int], Any] = {}


@dataclass(frozen=True)
class QualityPaths:
    gx_root: Path
    docs_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> QualityPaths:
        return cls(gx_root=settings.home / "gx", docs_dir=settings.home / "data_docs")


def get_context(paths: QualityPaths):
    """This thread's GX context for these folders (created once; cheap afterwards)."""
    key = (paths.gx_root, paths.docs_dir, threading.get_ident())
    if key not in _contexts:
        _contexts[key] = _build_context(paths)
    return _contexts[key]


def _build_context(paths: QualityPaths):
    def files(sub: str) -> dict[str, str]:
        return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(paths.gx_root / sub)}

    defaults = InMemoryStoreBackendDefaults()
    stores = dict(defaults.stores)
    # Only results on disk (a file per run and suite, so concurrent runs never clobber each other).
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": files("validations"),
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            report.DOCS_SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(paths.docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def gx_connection_string(warehouse_url: str) -> str:
    """SQLAlchemy URL GX accepts: socket-only URLs get a dummy host (the `host` query param wins)."""
    url = connection.sqlalchemy_url(connection.libpq_url(warehouse_url))
    parsed = urlparse(url)
    if not parsed.hostname:
        user = parsed.netloc.rstrip("@")
        parsed = parsed._replace(netloc=f"{user}@localhost" if user else "localhost")
    return parsed.geturl()


def _data_source(context, warehouse_url: str):
    """A data source per warehouse; the URL lives in an env var so it is never written anywhere."""
    digest = hashlib.sha1(warehouse_url.encode()).hexdigest()[:10]
    env_var = f"SENDWISE_GX_WAREHOUSE_{digest}"
    os.environ[env_var] = gx_connection_string(warehouse_url)
    name = f"warehouse_{digest}"
    try:
        return context.data_sources.get(name)
    except (KeyError, ValueError):
        return context.data_sources.add_postgres(name, connection_string="${" + env_var + "}")


def _batch_definition(data_source, asset_name: str, make_asset):
    with contextlib.suppress(LookupError):  # rebuilt every run so edits to the YAML apply
        data_source.delete_asset(asset_name)
    return make_asset().add_batch_definition_whole_table("whole_table")


def build_expectation(spec: ExpectationSpec):
    """The GX expectation for one spec (row-count/freshness/quarantine take run-time parameters)."""
    kwargs = dict(spec.kwargs)
    if spec.kind == "row_count":
        kwargs["min_value"] = {"$PARAMETER": "row_count_floor"}
    elif spec.kind == "freshness":
        kwargs["min_value"] = {"$PARAMETER": "freshness_floor"}
    elif spec.kind in QUARANTINE_SHARE_KINDS:
        kwargs["max_value"] = {"$PARAMETER": "max_quarantine_share"}
    if spec.where:
        kwargs["row_condition"] = Column(spec.where["column"]) == spec.where["equals"]
    if spec.expect == "unexpected_rows":
        cls = gx.expectations.UnexpectedRowsExpectation
    else:
        cls = getattr(gx.expectations, "Expect" + "".join(p.capitalize() for p in spec.expect.split("_")))
    return cls(
        **kwargs,
        description=spec.description or None,
        severity=_GX_SEVERITY[spec.severity],
        meta={"check": spec.check, "severity": spec.severity},
    )


class SuiteValidator:
    """Validates suites of one warehouse; holds the GX context and a SQLAlchemy engine."""

    def __init__(self, warehouse_url: str, settings: Settings, paths: QualityPaths | None = None) -> None:
        self.warehouse_url = warehouse_url
        self.settings = settings
        self.paths = paths or QualityPaths.from_settings(settings)
        self.context = get_context(self.paths)
        self.engine = connection.create_engine(warehouse_url)
        results.ensure_tables(self.engine)
        self._prepared: dict[tuple[str, bool], list] = {}
        self._references: dict[str, tuple[datetime, str]] = {}

    def close(self) -> None:
        self.engine.dispose()
        with contextlib.suppress(LookupError, ValueError, KeyError, AttributeError):
            data_source = _data_source(self.context, self.warehouse_url)
            # Only the engine: stored validation definitions still reference the data source.
            data_source.get_execution_engine().engine.dispose()

    def validate(
        self, spec: SuiteSpec, run_id: str, build_docs: bool | str = True, full: bool = False
    ) -> results.SuiteOutcome:
        """`full`: row-level checks over every row, also in suites that daily check only new rows.
        `build_docs`: True, False or "failures" (a Data Docs page only when a check failed)."""
        started = time.perf_counter()
        validated_at = datetime.now(UTC)
        if not self._table_exists(spec.schema, spec.table):
            outcomes = [
                _missing(e, f"table {spec.qualified_table} does not exist") for e in spec.expectations
            ]
            return self._finish(spec, run_id, validated_at, started, outcomes, None, None, build_docs)

        if spec.window_column:
            self._analyze_if_stale(spec)
        parameters, notes = self._parameters(spec, run_id)
        since = None
        # one validation of a new-rows suite at a time: it moves the suite's watermark
        with self._suite_lock(spec):
            if spec.new_rows_column:
                since, scope = self._set_watermark(spec, full)
                table_level = (*_whole_table_kinds(spec), *LOAD_LOG_KINDS)
                row_level = [e for e in spec.expectations if e.kind not in table_level and not e.whole_table]
                notes.update({e.check: scope for e in row_level})
            if spec.new_rows_column or spec.window_column:
                notes.update(
                    {e.check: "every row (scope: table)" for e in spec.expectations if e.whole_table}
                )
            quarantine_specs = [e for e in spec.expectations if e.kind in LOAD_LOG_KINDS]
            quarantine_note = self._quarantine_missing(spec) if quarantine_specs else None
            checkpoints = self._checkpoints(
                spec, with_load_log=bool(quarantine_specs) and quarantine_note is None, since=since
            )
            by_check: dict[str, Any] = {}
            identifiers = []
            for checkpoint in checkpoints:
                checkpoint_result = checkpoint.run(
                    expectation_parameters=parameters,
                    run_id=RunIdentifier(run_name=run_id, run_time=validated_at),
                )
                for identifier, validation in checkpoint_result.run_results.items():
                    identifiers.append(identifier)
                    for result in validation.results:
                        by_check[result.expectation_config.meta["check"]] = result
        outcomes = []
        for expectation in spec.expectations:
            if expectation.check in by_check:
                outcome = self._outcome(expectation, by_check[expectation.check], spec, since)
            else:
                outcome = _missing(expectation, quarantine_note or "not evaluated")
                if quarantine_note:
                    outcome.effective_severity = "warn"
            if expectation.check in notes:
                outcome.note = notes[expectation.check]
            outcomes.append(outcome)
        if spec.new_rows_column:
            self._passed_until(spec, outcomes)
        row_count = next(
            (
                int(o.observed_value)
                for o in outcomes
                if o.check == "row_count_vs_previous_run" and o.observed_value is not None
            ),
            None,
        )
        return self._finish(spec, run_id, validated_at, started, outcomes, row_count, identifiers, build_docs)

    def _checkpoints(self, spec: SuiteSpec, with_load_log: bool, since: datetime | None = None) -> list:
        """The suite's GX checkpoints, built from the YAML once per process, warehouse and watermark
        (a new-rows batch names its watermark as a literal: a subquery would hide the value from the
        planner, which then scans the table instead of using the stamp's index).

        One checkpoint for the table (offending values reported with the table's key columns) and,
        for extracted streams, one for the stream's loads in ops.load_log.
        """
        cache_key = (spec.name, with_load_log, since)
        if cache_key in self._prepared:
            return self._prepared[cache_key]
        data_source = _data_source(self.context, self.warehouse_url)
        table_specs = [e for e in spec.expectations if e.kind not in LOAD_LOG_KINDS]
        # a new watermark gets objects of its own name: GX rejects replacing ones a checkpoint uses
        tag = "" if since is None else f"__{since.strftime('%Y%m%dT%H%M%S%f')}"
        table = f"{spec.name}{tag}"
        batch = _batch_definition(
            data_source,
            table,
            lambda: data_source.add_table_asset(table, table_name=spec.table, schema_name=spec.schema),
        )
        if spec.window_column or spec.new_rows_column:
            # Big event tables: row-level expectations and freshness on the newest partitions only
            # (what daily loads add or replace); upserted tables: on the rows loaded since the last
            # passing validation (the watermark). The row count (and then freshness) on the whole table.
            window = f"{spec.name}__window{tag}"
            window_batch = _batch_definition(
                data_source,
                window,
                lambda: data_source.add_query_asset(window, query=spec.row_level_sql(since)),
            )
            whole = _whole_table_kinds(spec)
            on_table = [e for e in table_specs if e.kind in whole or e.whole_table]
            parts = [
                (window, window_batch, [e for e in table_specs if e not in on_table], spec.key),
                (table, batch, on_table, spec.key if any(e.whole_table for e in on_table) else ()),
            ]
        else:
            parts = [(table, batch, table_specs, spec.key)]
        if with_load_log:
            name = f"{spec.name}__load_log{tag}"
            batch = _batch_definition(
                data_source,
                name,
                lambda: data_source.add_query_asset(name, query=_load_log_query(spec.quarantine_stream)),
            )
            load_specs = [e for e in spec.expectations if e.kind in LOAD_LOG_KINDS]
            parts.append((name, batch, load_specs, ("batch_id",)))
        checkpoints = []
        for name, batch, specs, index_columns in (part for part in parts if part[2]):
            checkpoints.append(
                self.context.checkpoints.add_or_update(
                    gx.Checkpoint(
                        name=name,
                        validation_definitions=[self._validation_definition(name, batch, specs)],
                        result_format={
                            "result_format": "SUMMARY",
                            "partial_unexpected_count": SAMPLE_SIZE,
                            "unexpected_index_column_names": list(index_columns),
                        },
                    )
                )
            )
        self._prepared[cache_key] = checkpoints
        return checkpoints

    def _finish(self, spec, run_id, validated_at, started, outcomes, row_count, identifiers, build_docs):
        if build_docs == "failures":
            build_docs = any(not o.success for o in outcomes)
        page = (
            report.build_data_docs(
                self.context, self.paths.docs_dir, identifiers, self.paths.gx_root / "validations"
            )
            if build_docs and identifiers
            else None
        )
        outcome = results.SuiteOutcome(
            suite=spec.name,
            asset=spec.asset_path,
            table=spec.qualified_table,
            run_id=run_id,
            validated_at=validated_at,
            duration_seconds=time.perf_counter() - started,
            outcomes=outcomes,
            row_count=row_count,
            data_docs_page=page,
        )
        accepted = None
        if spec.max_shrink is not None and row_count is not None:
            accepted = outcome.outcome("row_count_vs_previous_run").success
        results.record(self.engine, outcome, accepted)
        return outcome

    def _validation_definition(self, name: str, batch_definition, specs: list[ExpectationSpec]):
        expectations = [build_expectation(e) for e in specs]
        suite = self.context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
        return self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )

    def _parameters(self, spec: SuiteSpec, run_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        parameters: dict[str, Any] = {}
        notes: dict[str, str] = {}
        if spec.max_shrink is not None:
            max_shrink = (
                self.settings.quality_max_shrink
                if self.settings.quality_max_shrink is not None
                else spec.max_shrink
            )
            previous = results.previous_row_count(self.engine, spec.name, run_id)
            parameters["row_count_floor"] = results.row_count_floor(previous, max_shrink)
            notes["row_count_vs_previous_run"] = (
                f"previous accepted count {previous}, may shrink by {max_shrink:.0%}"
                if previous is not None
                else "first run: no previous count"
            )
        if spec.freshness_column:
            if run_id not in self._references:  # one reference time per run (scans the event tables)
                self._references[run_id] = self._freshness_reference()
            reference, how = self._references[run_id]
            parameters["freshness_floor"] = reference - timedelta(hours=spec.freshness_max_age_hours or 0)
            notes["newest_event_is_fresh"] = f"reference time {reference.isoformat()} ({how})"
        if spec.quarantine_max_share is not None:
            override = self.settings.quality_max_quarantine_share
            parameters["max_quarantine_share"] = (
                override if override is not None else spec.quarantine_max_share
            )
        return parameters, notes

    @contextlib.contextmanager
    def _suite_lock(self, spec: SuiteSpec):
        """A session advisory lock on the suite while it validates (only for new-rows suites)."""
        if not spec.new_rows_column:
            yield
            return
        name = {"name": f"quality:{spec.name}"}
        with self.engine.connect() as conn:
            conn.execute(sa.text("select pg_advisory_lock(hashtext(:name))"), name)
            try:
                yield
            finally:
                conn.execute(sa.text("select pg_advisory_unlock(hashtext(:name))"), name)

    def _set_watermark(self, spec: SuiteSpec, full: bool) -> tuple[datetime | None, str]:
        """The stamp after which the suite's rows are new (None: every row), and the scope in words.

        The rows stamped after the newest stamp the last passing validation saw. A loaded stream:
        loads that were running during that validation (committed after it, their rows carry their
        start time) move it back to their start (ops.load_log says which). A built table (dbt model,
        ML table; no stream) has one writer, so no row commits later with an older stamp."""
        why = "full check" if full else "no passing validation yet"
        with self.engine.begin() as conn:
            checked_until = since = None
            if not self._has_stamp(conn, spec):  # built before the stamps existed: every row
                why = f"{spec.stamp_table} has no {spec.new_rows_column}"
            else:
                passed_until = conn.execute(
                    sa.text(f"select passed_until from {WATERMARKS_TABLE} where suite = :suite"),
                    {"suite": spec.name},
                ).scalar()  # fmt: skip
                checked_until = conn.execute(
                    sa.text(f'select max("{spec.new_rows_column}") from {spec.stamp_table}')
                ).scalar()
                if spec.quarantine_stream and not full:
                    passed = conn.execute(
                        sa.text("select max(validated_at) from ops.validation_results "
                                "where suite = :suite and failed_errors = 0"),
                        {"suite": spec.name},
                    ).scalar()  # fmt: skip
                    since = None if passed is None else self._new_rows_since(conn, spec, passed, passed_until)
                elif not full:
                    since = passed_until
            conn.execute(
                sa.text(f"insert into {WATERMARKS_TABLE} (suite, since, set_at, checked_until) values "
                        "(:suite, coalesce(:since, '-infinity'::timestamptz), now(), :until) "
                        "on conflict (suite) do update set since = excluded.since, set_at = excluded.set_at, "
                        "checked_until = excluded.checked_until"),
                {"suite": spec.name, "since": since, "until": checked_until},
            )  # fmt: skip
        if since is None:
            return None, f"every row ({why})"
        what = "loaded" if spec.quarantine_stream else "built"
        scope = f"rows {what} since {since.isoformat()}"
        return since, f"{scope} (the last passing validation; weekly: every row)"

    @staticmethod
    def _has_stamp(conn: sa.Connection, spec: SuiteSpec) -> bool:
        schema, _, table = spec.stamp_table.partition(".")
        return bool(
            conn.execute(
                sa.text("select count(*) > 0 from information_schema.columns "
                        "where table_schema = :schema and table_name = :table and column_name = :column"),
                {"schema": schema, "table": table, "column": spec.new_rows_column},
            ).scalar()
        )  # fmt: skip

    def _passed_until(self, spec: SuiteSpec, outcomes: list[results.CheckOutcome]) -> None:
        """After a validation of a built table without a failed error check: its rows are checked up
        to the newest stamp it saw (a failure leaves the watermark, so the next run sees them again)."""
        if any(not o.success and o.result_severity == "error" for o in outcomes):
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(f"update {WATERMARKS_TABLE} set passed_until = checked_until where suite = :suite"),
                {"suite": spec.name},
            )

    def _new_rows_since(
        self, conn: sa.Connection, spec: SuiteSpec, passed: datetime, passed_until: datetime | None
    ) -> datetime:
        """After the newest load stamp the last passing validation saw (`passed_until`; before it was
        recorded: that validation's time), or before the start of a load still running then."""
        margin = timedelta(minutes=1)  # rows carry their transaction's start, a moment before the logged one
        if not self._table_exists("ops", "load_log"):
            return passed - timedelta(hours=1)
        overlapping = conn.execute(
            sa.text("select min(started_at) from ops.load_log "
                    "where stream = :stream and started_at < :passed and finished_at >= :passed"),
            {"stream": spec.quarantine_stream, "passed": passed},
        ).scalar()  # fmt: skip
        if passed_until is None:
            return min(passed, overlapping or passed) - margin
        return passed_until if overlapping is None else min(passed_until, overlapping - margin)

    def _freshness_reference(self) -> tuple[datetime, str]:
        setting = self.settings.freshness_reference
        if setting == "now":
            return datetime.now(UTC), "now"
        if setting != "data":
            return datetime.fromisoformat(setting), "SENDWISE_FRESHNESS_REFERENCE"
        newest: list[datetime] = []
        with self.engine.connect() as conn:
            for other in load_suites():
                if other.freshness_column and self._table_exists(other.schema, other.table):
                    value = conn.execute(
                        sa.text(f'select max("{other.freshness_column}") from ({_freshness_sql(other)}) w')
                    ).scalar()
                    if value is not None:
                        newest.append(value)
        if not newest:
            return datetime.now(UTC), "now (no event data yet)"
        return max(newest), "newest event across the guarded feeds"

    def _analyze_if_stale(self, spec: SuiteSpec) -> None:
        """ANALYZE a freshly bulk-loaded table before validating its window.

        Without statistics the planner may scan the whole table for every GX query instead of using
        the index on the window column (seen: 21 s right after loading 2.5M web events, 9 s on the
        same table once analyzed).
        """
        with self.engine.begin() as conn:
            stats = conn.execute(
                sa.text(
                    "select n_live_tup, n_mod_since_analyze, coalesce(last_analyze, last_autoanalyze) "
                    "from pg_stat_user_tables where schemaname = :schema and relname = :table"
                ),
                {"schema": spec.schema, "table": spec.table},
            ).first()
            if stats and (stats[2] is None or stats[1] > 0.2 * max(stats[0], 1)):
                conn.execute(sa.text(f'analyze {spec.schema}."{spec.table}"'))

    def _table_exists(self, schema: str, table: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.text("select to_regclass(:name)"), {"name": f'{schema}."{table}"'}).scalar()
                is not None
            )

    def _quarantine_missing(self, spec: SuiteSpec) -> str | None:
        if not self._table_exists("ops", "load_log"):
            return "ops.load_log does not exist: no load has been recorded"
        with self.engine.connect() as conn:
            loads, absent = conn.execute(
                sa.text("select count(*) filter (where status = 'success'), count(*) filter (where status = "
                        "'absent') from ops.load_log where stream = :stream"),
                {"stream": spec.quarantine_stream},
            ).one()  # fmt: skip
        if loads:
            return None
        if absent:
            return f"source of {spec.quarantine_stream!r} absent: nothing loaded (ops.load_log status absent)"
        return f"no loads recorded for stream {spec.quarantine_stream!r} in ops.load_log"

    def _outcome(
        self, expectation: ExpectationSpec, result, spec: SuiteSpec, since: datetime | None
    ) -> results.CheckOutcome:
        body = result.result or {}
        observed = body.get("observed_value")
        unexpected_count = body.get("unexpected_count")
        sample: list[dict[str, Any]] = []
        if body.get("partial_unexpected_index_list"):
            sample = [_plain(row) for row in body["partial_unexpected_index_list"][:SAMPLE_SIZE]]
        elif body.get("partial_unexpected_list"):
            sample = [{"value": _plain(v)} for v in body["partial_unexpected_list"][:SAMPLE_SIZE]]
        if expectation.expect == "unexpected_rows":
            unexpected_count = observed
            if not result.success and observed:
                sample = self._unexpected_rows_sample(expectation, spec, since)
        if observed is None and unexpected_count is not None:
            observed = f"{unexpected_count} of {body.get('element_count')} rows unexpected"
        sample = mask_sample(sample, column=expectation.kwargs.get("column"))  # shown in the UI and reports
        note = _exception_message(result.exception_info or {})
        return results.CheckOutcome(
            check=expectation.check,
            severity=expectation.severity,
            expectation="expect_" + expectation.expect
            if expectation.expect != "unexpected_rows"
            else "unexpected_rows_expectation",
            kwargs=_plain(result.expectation_config.kwargs),
            success=bool(result.success),
            observed_value=_plain(observed),
            unexpected_count=unexpected_count,
            unexpected_percent=body.get("unexpected_percent"),
            sample=sample,
            description=expectation.description,
            note=note,
        )

    def _unexpected_rows_sample(
        self, expectation: ExpectationSpec, spec: SuiteSpec, since: datetime | None
    ) -> list[dict[str, Any]]:
        table = spec.qualified_table if expectation.whole_table else spec.row_level_sql(since)
        query = expectation.kwargs["unexpected_rows_query"].replace("{batch}", f"({table}) batch")
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(f"select * from ({query}) unexpected limit {SAMPLE_SIZE}")).mappings()
            return [_plain(dict(r)) for r in rows]


def _whole_table_kinds(spec: SuiteSpec) -> tuple[str, ...]:
    """Kinds checked on the whole table; a new-rows suite's freshness too (no new rows is not stale)."""
    return (*TABLE_LEVEL_KINDS, "freshness") if spec.new_rows_column else TABLE_LEVEL_KINDS


def _freshness_sql(spec: SuiteSpec) -> str:
    return f"select * from {spec.qualified_table}" if spec.new_rows_column else spec.row_level_sql()


def _load_log_query(stream: str | None) -> str:
    """Every successful load of a stream, with the quarantine share over the latest load per partition."""
    loads = "from ops.load_log where stream = '{}' and status = 'success'".format(
        str(stream).replace("'", "''")
    )
    return (
        "select batch_id, partition_key, received, loaded + quarantined + suppressed as accounted, loaded, "
        "quarantined, "
        "(select coalesce(sum(latest.quarantined)::float8 / nullif(sum(latest.received), 0), 0) from "
        f"(select distinct on (partition_key) received, quarantined {loads} "
        "order by partition_key, finished_at desc) latest) as quarantine_share " + loads
    )


def _exception_message(info: dict[str, Any]) -> str:
    """GX reports errors either flat or keyed by metric: the first message, shortened."""
    candidates = [info, *(v for v in info.values() if isinstance(v, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return str(candidate.get("exception_message"))[:500]
    return ""


def _missing(expectation: ExpectationSpec, note: str) -> results.CheckOutcome:
    return results.CheckOutcome(
        check=expectation.check,
        severity=expectation.severity,
        expectation="expect_" + expectation.expect,
        kwargs=_plain(expectation.kwargs),
        success=False,
        description=expectation.description,
        note=note,
    )


def _plain(value: Any) -> Any:
    """JSON-friendly copies of GX values (Decimals, datetimes, nested containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_json_dict"):
        return value.to_json_dict()
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


_validators: dict[tuple[str, Path, int], SuiteValidator] = {}


def run_suite(
    spec: SuiteSpec,
    warehouse_url: str,
    run_id: str,
    settings: Settings,
    build_docs: bool | str = True,
    full: bool = False,
) -> results.SuiteOutcome:
    """Validate one suite, persist the result, refresh Data Docs (True, False or "failures": only when
    a check failed) and the offline summary. `full`: every row, also where the daily run checks only
    new rows (the weekly full check)."""
    paths = QualityPaths.from_settings(settings)
    if settings.quality_thresholds:  # the user's per-check thresholds, read at run time
        (spec,) = apply_thresholds((spec,), {k: v for k, v in settings.quality_thresholds.items()
                                             if k.split(".", 1)[0] == spec.name})  # fmt: skip
    key = (warehouse_url, paths.gx_root, threading.get_ident())
    if key not in _validators:
        _validators[key] = SuiteValidator(warehouse_url, settings, paths)
    validator = _validators[key]
    validator.settings = settings
    outcome = validator.validate(spec, run_id, build_docs=build_docs, full=full)
    with report.file_lock(paths.docs_dir / ".build.lock"):
        report.write_offline_summary(validator.engine, paths.docs_dir)
    return outcome


def close_validators() -> None:
    """Dispose of the cached validators' connection pools (tests, long-lived processes)."""
    for validator in _validators.values():
        validator.close()
    _validators.clear()
