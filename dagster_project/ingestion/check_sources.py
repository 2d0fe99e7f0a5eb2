"""`sendwise check-sources`: read every configured source against its contract, load nothing.

Per source it prints what was found (tables and row counts, files and dates), what is missing, and a
sample of records that break the contract with their location and reason. Reading is bounded: a few
hundred rows per shop table, the first lines of the first and last files, so it answers in seconds on
any size of source. Exit 1 when a configured (not absent) source is unusable.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_project.settings import SOURCES, Settings

SAMPLE_ROWS = 500
SAMPLE_FILES = 3
SAMPLE_LINES = 200
SHOWN_PROBLEMS = 5


@dataclass
class SourceReport:
    source: str
    status: str = "ok"
    """ok | problems (some records break the contract) | absent | unusable (nothing can be loaded)."""
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(location, reason) of sampled records that break the contract."""
    sampled: int = 0

    def unusable(self, why: str) -> None:
        self.status = "unusable"
        self.missing.append(why)

    def finish(self) -> SourceReport:
        if self.status == "ok" and self.problems:
            self.status = "problems"
        return self


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample",
        type=int,
        default=SAMPLE_LINES,
        help=f"records read per file or table (default {SAMPLE_LINES})",
    )
    parser.add_argument(
        "--thresholds",
        action="store_true",
        help="also list every quality threshold you can set, with its value",
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project import preflight
    from dagster_project.settings import get_settings

    settings = get_settings()
    preflight.check_source_dir(settings)
    preflight.check_shop(settings)
    preflight.check_quality_thresholds(settings)
    reports = check_all(settings, sample=max(1, args.sample))
    print("\n".join(format_report(r) for r in reports))
    if args.thresholds:
        print(format_thresholds(settings))
    return 1 if any(r.status == "unusable" for r in reports) else 0


def check_all(settings: Settings, sample: int = SAMPLE_LINES) -> list[SourceReport]:
    from dagster_project.ingestion.presence import absence_reason

    reports = []
    for source in SOURCES:
        why = absence_reason(settings, source)
        if why:
            reports.append(SourceReport(source, "absent", missing=[why]))
            continue
        check = {"shop": check_shop, "crm": check_crm, "web": check_web, "esp": check_esp}[source]
        reports.append(check(settings, sample).finish())
    return reports


# --- shop ---------------------------------------------------------------------------------------


def check_shop(settings: Settings, sample: int = SAMPLE_ROWS) -> SourceReport:
    import sqlalchemy as sa

    from dagster_project.ingestion import parsers
    from dagster_project.ingestion.sources import SHOP_SCHEMA, SHOP_TABLES
    from dagster_project.warehouse import connection

    report = SourceReport("shop")
    engine = connection.create_engine(connection.shop_url(settings))
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names(schema=SHOP_SCHEMA)) if _has_schema(inspector) else set()
        with engine.connect() as conn:
            for table in SHOP_TABLES.values():
                name = f"{SHOP_SCHEMA}.{table.name}"
                if table.name not in tables:
                    report.unusable(f"table {name}")
                    continue
                columns = {c["name"] for c in inspector.get_columns(table.name, schema=SHOP_SCHEMA)}
                absent_columns = [c for c in table.column_names if c not in columns]
                if absent_columns:
                    report.unusable(f"columns of {name}: {', '.join(absent_columns)}")
                    continue
                source = sa.table(table.name, *map(sa.column, table.column_names), schema=SHOP_SCHEMA)
                cursor = source.c[table.cursor_column]
                count, first, last = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(cursor), sa.func.max(cursor)).select_from(source)
                ).one()
                dates = f", updated {_day(first)}..{_day(last)}" if count else ""
                report.found.append(f"{name}: {count:,} rows{dates}")
                for row in conn.execute(sa.select(*source.c).limit(sample)).mappings():
                    report.sampled += 1
                    try:
                        parsers.shop_row(table, dict(row))
                    except parsers.RecordError as error:
                        report.problems.append(
                            (f"{name}:{table.primary_key}={row[table.primary_key]}", str(error))
                        )
    finally:
        engine.dispose()
    return report


def _has_schema(inspector) -> bool:
    from dagster_project.ingestion.sources import SHOP_SCHEMA

    return SHOP_SCHEMA in inspector.get_schema_names()


def _day(value: Any) -> str:
    return value.date().isoformat() if hasattr(value, "date") else str(value)


# --- files --------------------------------------------------------------------------------------


def check_crm(settings: Settings, sample: int = SAMPLE_LINES) -> SourceReport:
    from dagster_project.ingestion import parsers
    from dagster_project.ingestion.sources import CRM_CONTACTS_DIR, crm_export_dates, crm_export_pages

    report = SourceReport("crm")
    root = settings.source_dir
    dates = crm_export_dates(root)
    _note_undated(report, root / CRM_CONTACTS_DIR, dates, lambda p: p.is_dir())
    if not dates:
        report.unusable(f"export folders {CRM_CONTACTS_DIR}/<YYYY-MM-DD>/ in {root}")
        return report
    pages = {d: crm_export_pages(root, d) for d in dates}
    report.found.append(
        f"{len(dates)} exports {dates[0]}..{dates[-1]}, {sum(map(len, pages.values()))} pages"
    )
    for export_date in _ends(dates):
        if not pages[export_date]:
            report.problems.append((f"{CRM_CONTACTS_DIR}/{export_date}", "no page-*.json files"))
        for page in pages[export_date][:SAMPLE_FILES]:
            rejections = parsers.Rejections()
            rows, header = parsers.read_crm_page(page, str(page.relative_to(root)), rejections)
            report.sampled += len(rows) + len(rejections)
            report.problems += [(r.location, r.reason) for r in rejections.items]
            if header and header.get("total_pages") not in (None, len(pages[export_date])):
                report.problems.append((
                    f"{CRM_CONTACTS_DIR}/{export_date}",
                    f"{len(pages[export_date])} pages of total_pages {header['total_pages']}: incomplete, "
                    "the load stops before it",
                ))  # fmt: skip
    return report


def check_web(settings: Settings, sample: int = SAMPLE_LINES) -> SourceReport:
    from dagster_project.ingestion.loaders import WEB_EVENTS

    return _check_events("web", settings.source_dir, WEB_EVENTS.folder, WEB_EVENTS.to_row, sample)


def check_esp(settings: Settings, sample: int = SAMPLE_LINES) -> SourceReport:
    from dagster_project.ingestion.loaders import ESP_EVENTS

    return _check_events("esp", settings.source_dir, ESP_EVENTS.folder, ESP_EVENTS.to_row, sample)


def _check_events(
    source: str, root: Path, folder: Path, to_row: Callable[[Any], tuple], sample: int
) -> SourceReport:
    from dagster_project.ingestion import parsers
    from dagster_project.ingestion.sources import event_file, event_file_dates

    report = SourceReport(source)
    dates = event_file_dates(root, folder)
    _note_undated(report, root / folder, dates, lambda p: p.suffix == ".jsonl")
    if not dates:
        report.unusable(f"event files {folder}/<YYYY-MM-DD>.jsonl in {root}")
        return report
    size = sum(event_file(root, folder, d).stat().st_size for d in dates)
    report.found.append(f"{len(dates)} daily files {dates[0]}..{dates[-1]}, {size / 1e6:,.1f} MB")
    rows = 0
    for day in _ends(dates):
        path = event_file(root, folder, day)
        rejections = parsers.Rejections()
        parsed = parsers.read_jsonl(path, str(path.relative_to(root)), to_row, rejections)
        good = sum(1 for _ in itertools.islice(parsed, sample))
        rows += good
        report.problems += [(r.location, r.reason) for r in rejections.items]
        report.sampled += good + len(rejections)
    if rows == 0:
        report.unusable(f"records that fit the contract in the sampled files of {folder}/")
    return report


def _ends(dates: list[str]) -> list[str]:
    """The first and the last dates (where a format change usually shows), without repeats."""
    half = max(1, SAMPLE_FILES // 2 + 1)
    return list(dict.fromkeys(dates[:half] + dates[-half:]))


def _note_undated(
    report: SourceReport, folder: Path, dates: list[str], wanted: Callable[[Path], bool]
) -> None:
    if not folder.is_dir():
        return
    ignored = sorted(
        p.name for p in folder.iterdir() if wanted(p) and p.stem not in dates and p.name not in dates
    )
    if ignored:
        report.problems.append((str(folder), f"ignored (not named YYYY-MM-DD): {', '.join(ignored[:5])}"))


# --- output -------------------------------------------------------------------------------------


def format_report(report: SourceReport) -> str:
    lines = [f"{report.source:<5} {report.status}"]
    lines += [f"      found: {line}" for line in report.found]
    lines += [f"      missing: {line}" for line in report.missing]
    if report.problems:
        lines.append(f"      {len(report.problems)} problems in {report.sampled:,} sampled records, e.g.:")
        lines += [f"        {location}: {reason}" for location, reason in report.problems[:SHOWN_PROBLEMS]]
    return "\n".join(lines)


def format_thresholds(settings: Settings) -> str:
    """Every quality threshold a user can set (`<suite>.<check>`), its default and its value in use."""
    from dagster_project.quality.suites import apply_thresholds, check_bounds, load_suites

    defaults = load_suites()
    used = {s.name: s for s in apply_thresholds(defaults, settings.quality_thresholds)}
    lines = ["quality thresholds (SENDWISE_QUALITY_THRESHOLDS / [quality.thresholds]):"]
    for suite in defaults:
        for check in suite.expectations:
            default = check_bounds(suite, check)
            if not default:
                continue
            current = check_bounds(used[suite.name], used[suite.name].check(check.check))
            shown = _bounds_text(default) + ("" if current == default else f" -> {_bounds_text(current)}")
            lines.append(f"  {suite.name}.{check.check} [{check.severity}]: {shown}")
    return "\n".join(lines)


def _bounds_text(bounds: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in bounds.items())
