"""The data-quality suites as plain data, read from `expectations/*.yml` (cheap: no GX import).

Each suite turns into one GX expectation suite (see gx_runner.py) and one Dagster asset check per
expectation (see checks.py). The table-level checks that need state or other tables (row count vs
the previous run, freshness, quarantine share) are declared in their own blocks and expanded here
into `ExpectationSpec`s with `kind` set, so every check is described the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dagster_project.settings import PROJECT_ROOT

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
SEVERITIES = ("error", "warn")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_RESERVED = {"check", "expect", "severity", "description", "where", "scope"}
SCOPES = ("rows", "table")

# Checks on the whole table even when the suite has a window (the newest events are in the window).
TABLE_LEVEL_KINDS = ("row_count",)
WATERMARKS_TABLE = "ops.quality_watermarks"
LOAD_LOG_KINDS = ("quarantine_share", "loads_balanced")
QUARANTINE_SHARE_KINDS = ("quarantine_share", "table_quarantine_share")
ROW_COUNT_CHECK = "row_count_vs_previous_run"
FRESHNESS_CHECK = "newest_event_is_fresh"
QUARANTINE_SHARE_CHECK = "quarantine_share"
LOADS_BALANCED_CHECK = "loads_balanced"


class SuiteDefinitionError(ValueError):
    """A suite file that cannot be turned into checks (names the file and the problem)."""


@dataclass(frozen=True)
class ExpectationSpec:
    check: str
    """Dagster check name (unique per asset)."""
    expect: str
    """GX expectation in snake_case without `expect_` (e.g. column_values_to_be_unique)."""
    severity: str
    kwargs: dict[str, Any]
    description: str = ""
    where: dict[str, Any] | None = None
    kind: str = "plain"
    """plain | row_count | freshness | quarantine_share | loads_balanced | table_quarantine_share."""
    whole_table: bool = False
    """`scope: table`: validated on every row even when the suite's daily checks see only new rows or
    a window (uniqueness against the old rows, aggregates over the table)."""

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    asset: tuple[str, ...]
    schema: str
    table: str
    key: tuple[str, ...]
    description: str
    expectations: tuple[ExpectationSpec, ...]
    max_shrink: float | None = None
    freshness_column: str | None = None
    freshness_max_age_hours: float | None = None
    quarantine_stream: str | None = None
    quarantine_max_share: float | None = None
    window_column: str | None = None
    """Row-level checks look at the newest `window_days` values of this (indexed) date column only."""
    window_days: int | None = None
    new_rows_column: str | None = None
    """Daily, row-level checks look only at rows whose load or build time (this column) is after the
    watermark in ops.quality_watermarks: for a loaded stream the last passing validation (moved back to
    a load that overlapped it), for a built table the newest stamp the last passing validation saw; the
    weekly full run checks them all."""
    new_rows_table: str | None = None
    """The table that carries `new_rows_column` when the guarded one does not (a view over it): the
    rows whose key has a newer stamp there are the new rows."""
    source_file: Path = field(default=Path("."), compare=False)

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def stamp_table(self) -> str:
        """Where `new_rows_column` lives."""
        return self.new_rows_table or self.qualified_table

    def row_level_sql(self, since: datetime | None = None) -> str:
        """What the row-level expectations validate: the whole table, its newest window, or its rows
        stamped after `since` (a literal, so the planner can use the stamp's index; None: every row)."""
        if self.new_rows_column:
            if since is None:
                return f"select * from {self.qualified_table}"
            stamp = f"\"{self.new_rows_column}\" > timestamptz '{since.isoformat()}'"
            if self.new_rows_table:
                key = self.key[0]
                return (
                    f"select * from {self.qualified_table} where {key} in "
                    f"(select {key} from {self.new_rows_table} where {stamp})"
                )
            return f"select * from {self.qualified_table} where {stamp}"
        if not self.window_column:
            return f"select * from {self.qualified_table}"
        column = f'"{self.window_column}"'
        return (
            f"select * from {self.qualified_table} where {column} > "
            f"(select max({column}) from {self.qualified_table}) - {int(self.window_days or 0)}"
        )

    @property
    def asset_path(self) -> str:
        return "/".join(self.asset)

    def check(self, name: str) -> ExpectationSpec:
        return next(e for e in self.expectations if e.check == name)


def load_suites(folder: Path = EXPECTATIONS_DIR) -> tuple[SuiteSpec, ...]:
    suites = tuple(load_suite(path) for path in sorted(folder.glob("*.yml")))
    names = [s.name for s in suites]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise SuiteDefinitionError(f"suite names used twice in {folder}: {sorted(duplicated)}")
    return suites


# Thresholds a user may set per check (SENDWISE_QUALITY_THRESHOLDS / [quality.thresholds] in sendwise.toml):
# "<suite>.<check>" -> a number (the check's one bound) or a mapping of bound names to numbers. The
# table-level checks' bound lives on the suite (row_count: max_shrink, freshness: max_age_hours,
# quarantine: max_share); a plain check's bounds are its `mostly`, `min_value`, `max_value`. The
# defaults are the values in expectations/*.yml (`sendwise check-sources --thresholds` lists them).
PLAIN_BOUNDS = ("mostly", "min_value", "max_value")
SUITE_BOUNDS = {
    "row_count": "max_shrink",
    "freshness": "max_age_hours",
    "quarantine_share": "max_share",
    "table_quarantine_share": "max_share",
}
_SUITE_FIELDS = {"max_shrink": "max_shrink", "max_age_hours": "freshness_max_age_hours",
                 "max_share": "quarantine_max_share"}  # fmt: skip


def check_bounds(suite: SuiteSpec, check: ExpectationSpec) -> dict[str, float]:
    """The bounds of one check that a threshold override can set, with their current values."""
    if check.kind in SUITE_BOUNDS:
        name = SUITE_BOUNDS[check.kind]
        return {name: getattr(suite, _SUITE_FIELDS[name])}
    return {k: check.kwargs[k] for k in PLAIN_BOUNDS if isinstance(check.kwargs.get(k), int | float)}


def apply_thresholds(suites: tuple[SuiteSpec, ...], overrides: Mapping[str, object]) -> tuple[SuiteSpec, ...]:
    """The suites with the overridden thresholds; a ValueError names an unknown or unusable key."""
    by_name = {s.name: s for s in suites}
    changed = dict(by_name)
    for key, value in overrides.items():
        suite_name, _, check_name = key.partition(".")
        suite = changed.get(suite_name)
        if suite is None:
            raise ValueError(f"{key}: no suite {suite_name!r} (suites: {', '.join(sorted(by_name))})")
        check = next((e for e in suite.expectations if e.check == check_name), None)
        if check is None:
            names = ", ".join(e.check for e in suite.expectations)
            raise ValueError(f"{key}: suite {suite_name} has no check {check_name!r} (checks: {names})")
        changed[suite_name] = _override(suite, check, key, _bounds_value(key, suite, check, value))
    return tuple(changed[s.name] for s in suites)


def _bounds_value(key: str, suite: SuiteSpec, check: ExpectationSpec, value: object) -> dict[str, float]:
    bounds = check_bounds(suite, check)
    allowed = set(bounds) | ({"mostly"} if check.expect.startswith("column_values_") else set())
    if isinstance(value, Mapping):
        wanted = dict(value)
    elif len(bounds) == 1:
        wanted = {next(iter(bounds)): value}
    else:
        has = ", ".join(sorted(bounds)) or "none"
        raise ValueError(f"{key}: give a mapping of bounds (this check's bounds: {has})")
    for name, bound in wanted.items():
        if name not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValueError(f"{key}: {name!r} is not a bound of this check (bounds: {names})")
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ValueError(f"{key}.{name}: {bound!r} is not a number")
        if name in ("mostly", "max_shrink", "max_share") and not 0 <= bound <= 1:
            raise ValueError(f"{key}.{name}: {bound} is not between 0 and 1")
    return {name: float(bound) for name, bound in wanted.items()}


def _override(suite: SuiteSpec, check: ExpectationSpec, key: str, bounds: dict[str, float]) -> SuiteSpec:
    if check.kind in SUITE_BOUNDS:
        return replace(suite, **{_SUITE_FIELDS[name]: bound for name, bound in bounds.items()})
    new_check = replace(check, kwargs={**check.kwargs, **bounds})
    return replace(suite, expectations=tuple(new_check if e is check else e for e in suite.expectations))


def load_suite(path: Path) -> SuiteSpec:
    raw = yaml.safe_load(path.read_text())
    try:
        return _parse_suite(raw, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteDefinitionError(f"{path}: {exc}") from exc


def _parse_suite(raw: dict[str, Any], path: Path) -> SuiteSpec:
    schema, _, table = raw["table"].partition(".")
    if not table:
        raise ValueError(f"table must be schema.table, got {raw['table']!r}")
    expectations = [_parse_expectation(item) for item in raw.get("expectations", [])]
    max_shrink = freshness_column = freshness_age = stream = max_share = None
    if row_count := raw.get("row_count"):
        max_shrink = float(row_count["max_shrink"])
        expectations.append(
            ExpectationSpec(
                check=ROW_COUNT_CHECK,
                expect="table_row_count_to_be_between",
                severity=_severity(row_count),
                kwargs={},
                description=f"The table may shrink by at most {max_shrink:.0%} vs the last accepted run.",
                kind="row_count",
            )
        )
    if freshness := raw.get("freshness"):
        freshness_column = freshness["column"]
        freshness_age = float(freshness["max_age_hours"])
        expectations.append(
            ExpectationSpec(
                check=FRESHNESS_CHECK,
                expect="column_max_to_be_between",
                severity=_severity(freshness),
                kwargs={"column": freshness_column},
                description=f"Newest {freshness_column} within {freshness_age:g} h of the reference time.",
                kind="freshness",
            )
        )
    if quarantine := raw.get("quarantine"):
        max_share = float(quarantine["max_share"])
        severity = _severity(quarantine)
        if "stream" in quarantine:
            stream = quarantine["stream"]
            expectations += [
                ExpectationSpec(
                    check=QUARANTINE_SHARE_CHECK,
                    expect="column_max_to_be_between",
                    severity=severity,
                    kwargs={"column": "quarantine_share"},
                    description=f"At most {max_share:.0%} of the received rows of {stream!r} quarantined.",
                    kind="quarantine_share",
                ),
                ExpectationSpec(
                    check=LOADS_BALANCED_CHECK,
                    expect="column_pair_values_to_be_equal",
                    severity=severity,
                    kwargs={"column_A": "received", "column_B": "accounted"},
                    description=(
                        "Every load: loaded + quarantined + suppressed (privacy) = received "
                        "(nothing silently dropped)."
                    ),
                    kind="loads_balanced",
                ),
            ]
        else:
            # A table of shares (one row per source, e.g. the staging quarantine): every row bounded.
            expectations.append(
                ExpectationSpec(
                    check=QUARANTINE_SHARE_CHECK,
                    expect="column_values_to_be_between",
                    severity=severity,
                    kwargs={"column": quarantine["column"]},
                    description=f"At most {max_share:.0%} of the rows of every source quarantined.",
                    kind="table_quarantine_share",
                )
            )
    if raw.get("window") and raw.get("new_rows"):
        raise ValueError("a suite has either a window or new_rows, not both")
    checks = [e.check for e in expectations]
    for name in checks:
        if checks.count(name) > 1:
            raise ValueError(f"check name {name!r} used twice")
    return SuiteSpec(
        name=_valid_name(raw["suite"]),
        asset=tuple(raw["asset"].split("/")),
        schema=schema,
        table=table,
        key=tuple(raw.get("key", ())),
        description=raw.get("description", ""),
        expectations=tuple(expectations),
        max_shrink=max_shrink,
        freshness_column=freshness_column,
        freshness_max_age_hours=freshness_age,
        quarantine_stream=stream,
        quarantine_max_share=max_share,
        window_column=(raw.get("window") or {}).get("column"),
        window_days=(raw.get("window") or {}).get("days"),
        new_rows_column=(raw.get("new_rows") or {}).get("column"),
        new_rows_table=_new_rows_table(raw),
        source_file=path,
    )


def _new_rows_table(raw: dict[str, Any]) -> str | None:
    table = (raw.get("new_rows") or {}).get("table")
    if table is not None and len(raw.get("key", ())) != 1:
        raise ValueError("new_rows with a table needs a key of one column (the join to that table)")
    if table is not None and "." not in table:
        raise ValueError(f"new_rows table must be schema.table, got {table!r}")
    return table


def _parse_expectation(item: dict[str, Any]) -> ExpectationSpec:
    kwargs = {k: v for k, v in item.items() if k not in _RESERVED}
    if item["expect"] == "unexpected_rows":
        kwargs = {"unexpected_rows_query": " ".join(str(kwargs.pop("query")).split()), **kwargs}
    return ExpectationSpec(
        check=_valid_name(item["check"]),
        expect=item["expect"],
        severity=_severity(item),
        kwargs=kwargs,
        description=str(item.get("description", "")).strip(),
        where=item.get("where"),
        whole_table=_scope(item) == "table",
    )


def _scope(item: dict[str, Any]) -> str:
    scope = item.get("scope", "rows")
    if scope not in SCOPES:
        raise ValueError(f"check {item.get('check')!r}: scope must be one of {SCOPES}, got {scope!r}")
    return scope


def _severity(item: dict[str, Any]) -> str:
    severity = item.get("severity", "error")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return severity


def _valid_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid name (letters, digits, underscores)")
    return name
