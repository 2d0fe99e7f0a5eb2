"""Why a run failed, in a line per failed step or check (the demo's output; the full log is in the UI).

A failed step: its first error line, from the exception user code raised (Dagster wraps it).
A failed check: the check, its observed value and a sample of the offending keys from its metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import dagster as dg

MAX_LINE = 300
SAMPLE_ROWS = 3


def error_reason(error: Any) -> str:
    """First line of the innermost cause of a Dagster SerializableErrorInfo (what user code raised)."""
    if error is None:
        return "no error recorded"
    error = _root(error)
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    first = lines[0] if lines else error.cls_name or "unknown error"
    return _short(_MODULE_PATH.sub("", first))


_MODULE_PATH = re.compile(r"^(?:[a-z_][\w]*\.)+(?=[A-Z]\w*: )")  # dagster_project.settings.SettingsError


def step_failure_reason(event: dg.DagsterEvent) -> str | None:
    """Why a STEP_FAILURE happened; None for failed blocking checks (their check line says why)."""
    error = event.step_failure_data.error
    if getattr(_root(error), "cls_name", None) == "DagsterAssetCheckFailedError":
        return None
    return error_reason(error)


def step_failure_lines(events: Iterable[dg.DagsterEvent]) -> list[str]:
    """`<step>: <reason>` for every STEP_FAILURE event but failed blocking checks."""
    failures = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    return [f"{e.step_key}: {reason}" for e in failures if (reason := step_failure_reason(e))]


def check_failure_line(evaluation: dg.AssetCheckEvaluation) -> str:
    """`<asset>:<check> (<severity>): observed <value>; e.g. <key=value, ...>`."""
    metadata = {k: _value(v) for k, v in (evaluation.metadata or {}).items()}
    parts = [f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({evaluation.severity.value})"]
    observed = metadata.get("observed_value")
    if observed in (None, ""):
        observed = metadata.get("dagster_dbt/failed_row_count")
        observed = f"{observed} failing rows" if observed is not None else None
    details = []
    if observed not in (None, ""):
        details.append(f"observed {observed}")
    sample = markdown_rows(str(metadata.get("sample") or ""))
    if sample:
        details.append("e.g. " + "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in sample))
    elif metadata.get("note"):
        details.append(str(metadata["note"]))
    return _short(parts[0] + (": " + "; ".join(details) if details else ""))


def failed_checks(evaluations: Iterable[dg.AssetCheckEvaluation], blocking_only: bool = True) -> list[str]:
    return [
        check_failure_line(e)
        for e in evaluations
        if not e.passed and (e.severity == dg.AssetCheckSeverity.ERROR or not blocking_only)
    ]


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every failed step and failed blocking check of a run, one line each."""
    return step_failure_lines(result.all_events) + failed_checks(result.get_asset_check_evaluations())


def markdown_rows(table: str, limit: int | None = SAMPLE_ROWS) -> list[dict[str, str]]:
    """The first rows of a Markdown table (the `sample` metadata of a check) as dicts."""
    lines = [line.strip() for line in table.splitlines() if line.strip().startswith("|")]
    if len(lines) < 3:
        return []

    def cells(line: str) -> list[str]:
        return [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]

    header = cells(lines[0])
    body = lines[2:] if limit is None else lines[2 : 2 + limit]
    return [dict(zip(header, cells(line), strict=False)) for line in body]


def _root(error: Any) -> Any:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def _value(value: Any) -> Any:
    return value.value if isinstance(value, dg.MetadataValue) else value


def _short(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def format_failures(lines: list[str], indent: str = "  ") -> str:
    return "\n".join(f"{indent}- {line}" for line in lines)
