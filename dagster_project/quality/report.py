"""Quality reports: GX Data Docs under `<home>/data_docs`, plus an offline summary page.

GX's Data Docs pull their CSS/JS from public CDNs (7 of them) and render empty or unstyled without
internet: after every build `make_offline` strips those tags and inlines a small stylesheet, so the
pages make no outside request. The summary (`<home>/data_docs/summary.html`) is one self-contained
HTML file (inline CSS, no scripts) built from ops.validation_results: the latest validation of every
suite with every check's outcome; the asset checks link it.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dagster_project.quality import results

DOCS_SITE = "sendwise"
SUMMARY_NAME = "summary.html"
KEEP_RUNS_IN_DOCS = 30

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2433}
h1{font-size:22px}h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border:1px solid #d9dde5;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f4f8}.ok{color:#116329;font-weight:600}.fail{color:#b42318;font-weight:600}
.warn{color:#9a6700;font-weight:600}.muted{color:#667085}code{font-size:12px;white-space:pre-wrap}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:2px}
.dot.t{background:#12b76a}.dot.f{background:#f04438}
"""


_REMOTE_ASSET = re.compile(
    r"""<link\b[^>]*\bhref=["']https?://[^>]*>|<script\b[^>]*\bsrc=["']https?://[^>]*>\s*</script>"""
    r"""|<img\b[^>]*\bsrc=["']https?://[^>]*>""",
    re.IGNORECASE,
)
_REMOTE_CSS_URL = re.compile(r"""url\(\s*["']?https?://[^)]*\)""", re.IGNORECASE)
_OFFLINE_CSS = (
    _CSS
    + """
.container-fluid,.row{display:block}.card{border:1px solid #d9dde5;border-radius:6px;padding:8px;margin:8px 0}
.badge{display:inline-block;padding:0 6px;border-radius:4px;background:#f2f4f8}.text-danger{color:#b42318}
.text-success{color:#116329}.nav,.navbar{list-style:none;padding:0}.d-none{display:none}
"""
)


def summary_path(docs_dir: Path) -> Path:
    return docs_dir / SUMMARY_NAME


def build_data_docs(context: Any, docs_dir: Path, identifiers: list, results_dir: Path) -> str | None:
    """Update the GX Data Docs site for these validation results; the URL of the first result's page.

    The site's index is rebuilt from every stored result, so old results are pruned first (the full
    history stays queryable in ops.validation_results).
    """
    docs_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(docs_dir / ".build.lock"):
        prune_stored_results(results_dir, docs_dir)
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=identifiers)
        make_offline(docs_dir)
    urls = context.get_docs_sites_urls(resource_identifier=identifiers[0], site_name=DOCS_SITE)
    return urls[0]["site_url"] if urls else None


def make_offline(docs_dir: Path) -> int:
    """Strip the CDN stylesheets, scripts and logos from the Data Docs pages; inline a small stylesheet.

    Idempotent (pages already offline are left alone); returns how many pages were rewritten.
    """
    rewritten = 0
    for page in [*docs_dir.rglob("*.html"), *docs_dir.rglob("*.css")]:
        text = page.read_text(encoding="utf-8")
        offline = _REMOTE_CSS_URL.sub("none", _REMOTE_ASSET.sub("", text))
        if offline == text:
            continue
        if page.suffix == ".html":
            offline = offline.replace("</head>", f"<style>{_OFFLINE_CSS}</style></head>", 1)
        page.write_text(offline, encoding="utf-8")
        rewritten += 1
    return rewritten


def prune_stored_results(results_dir: Path, docs_dir: Path, keep_runs: int = KEEP_RUNS_IN_DOCS) -> int:
    """Delete all but the newest `keep_runs` stored GX results of each suite (and their pages).

    Layout of GX's stores: <suite>/<run name>/<run time>/<batch>.json (and .html in the site).
    """
    removed = 0
    if not results_dir.exists():
        return removed
    for suite_dir in (d for d in results_dir.iterdir() if d.is_dir()):
        runs = sorted(
            (run_time.name, run_time) for run_name in suite_dir.iterdir() if run_name.is_dir()
            for run_time in run_name.iterdir() if run_time.is_dir()
        )  # fmt: skip
        for _, run_time in runs[:-keep_runs] if len(runs) > keep_runs else []:
            relative = run_time.relative_to(results_dir)
            shutil.rmtree(run_time, ignore_errors=True)
            shutil.rmtree(docs_dir / "validations" / relative, ignore_errors=True)
            removed += 1
    return removed


def write_offline_summary(engine: sa.Engine, docs_dir: Path) -> Path:
    """Write the self-contained summary of the latest results (atomically) and return its path."""
    latest = results.latest_results(engine)
    history = results.history(engine)
    page = render_summary(latest, history, generated_at=datetime.now(UTC))
    docs_dir.mkdir(parents=True, exist_ok=True)
    target = summary_path(docs_dir)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


def render_summary(
    latest: list[dict[str, Any]], history: dict[str, list[bool]], generated_at: datetime
) -> str:
    esc = html.escape
    overview = []
    details = []
    for row in latest:
        status = _status(row["success"], row["failed_warnings"])
        dots = "".join(
            f'<span class="dot {"t" if ok else "f"}"></span>' for ok in history.get(row["suite"], [])
        )
        docs = f'<a href="{esc(row["data_docs_page"])}">GX Data Docs</a>' if row.get("data_docs_page") else ""
        overview.append(
            f'<tr><td><a href="#{esc(row["suite"])}">{esc(row["suite"])}</a></td><td>{esc(row["asset"])}</td>'
            f"<td>{status}</td><td>{row['failed_errors']}</td><td>{row['failed_warnings']}</td>"
            f"<td>{_fmt(row['row_count'])}</td><td>{row['duration_seconds']:.2f}</td>"
            f"<td>{esc(str(row['validated_at']))}</td><td>{dots}</td><td>{docs}</td></tr>"
        )
        checks = row["results"] if isinstance(row["results"], list) else json.loads(row["results"])
        lines = []
        for check in checks:
            severity = check.get("effective_severity") or check["severity"]
            state = (
                '<span class="ok">pass</span>'
                if check["success"]
                else (
                    '<span class="fail">FAIL</span>'
                    if severity == "error"
                    else '<span class="warn">warn</span>'
                )
            )
            lines.append(
                f"<tr><td>{esc(check['check'])}</td><td>{esc(severity)}</td><td>{state}</td>"
                f"<td><code>{esc(check['expectation'])}</code><br><code class=muted>"
                f"{esc(json.dumps(check['kwargs'], default=str))}</code></td>"
                f"<td>{esc(_fmt(check.get('observed_value')))}</td><td>{_fmt(check.get('unexpected_count'))}</td>"
                f"<td><code>{esc(json.dumps(check.get('sample') or [], default=str)[:600])}</code></td>"
                f"<td>{esc(check.get('note') or '')} "
                f"<span class=muted>{esc(check.get('description') or '')}</span></td></tr>"
            )
        details.append(
            f'<h2 id="{esc(row["suite"])}">{esc(row["suite"])} <span class=muted>({esc(row["table_name"])},'
            f" run {esc(row['run_id'])})</span></h2><table><tr><th>check</th><th>severity</th><th>result</th>"
            "<th>expectation</th><th>observed</th><th>unexpected</th><th>sample</th><th>note</th></tr>"
            + "".join(lines)
            + "</table>"
        )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Sendwise data quality</title>"
        f"<style>{_CSS}</style></head><body><h1>Sendwise data quality</h1>"
        f"<p class=muted>Latest validation of every suite; generated {esc(generated_at.isoformat())}. "
        "Error checks block downstream assets; warnings are recorded only. Full history: "
        "<code>select * from ops.validation_results</code>.</p>"
        "<table><tr><th>suite</th><th>asset</th><th>status</th><th>failed errors</th><th>failed warnings</th>"
        "<th>rows</th><th>seconds</th><th>validated at</th><th>recent runs</th><th>docs</th></tr>"
        + "".join(overview)
        + "</table>"
        + "".join(details)
        + "</body></html>"
    )


def _status(success: bool, failed_warnings: int) -> str:
    if not success:
        return '<span class="fail">FAILED</span>'
    if failed_warnings:
        return '<span class="warn">passed with warnings</span>'
    return '<span class="ok">passed</span>'


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (check steps may run in parallel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
