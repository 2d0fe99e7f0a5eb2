"""What a pipeline run produced, beyond row counts: the ESP sync, the models' figures, a profile to open.

Each part reads one warehouse table and is left out when that table does not exist yet or is empty.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

# The model figures worth a glance, in this order; other models show their first scalar metrics.
KEY_METRICS = (
    "customers", "k", "silhouette", "stability_ari", "ari_kmeans", "ari_rfm_baseline",
    "real_responses", "deliveries",
)  # fmt: skip
MAX_METRICS = 6


def _exists(conn: sa.Connection, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()


def esp_result(conn: sa.Connection) -> str | None:
    """The latest ESP sync: destination, what it changed and how many API requests it took."""
    if not _exists(conn, "activation.esp_sync_log"):
        return None
    row = (
        conn.execute(sa.text("select * from activation.esp_sync_log order by started_at desc limit 1"))
        .mappings()
        .first()
    )
    if row is None:
        return None
    counts = ", ".join(
        f"{row[name] or 0} {name}" for name in ("added", "updated", "unchanged", "removed", "failed")
    )
    mode = " (dry run)" if row["dry_run"] else ""
    line = f"{row['destination']}{mode} {row['status']}: {counts}; {row['requests'] or 0} requests"
    return line + (f"; error: {row['error']}" if row["error"] else "")


def model_figures(conn: sa.Connection) -> list[str]:
    """`<model> <version>: name=value, ...` for the latest run of every model in ml.model_runs."""
    if not _exists(conn, "ml.model_runs"):
        return []
    rows = conn.execute(
        sa.text(
            "select distinct on (model) model, version, metrics from ml.model_runs "
            "order by model, created_at desc"
        )
    ).all()
    return [f"{model} {version}: {_metric_text(_loads(metrics))}" for model, version, metrics in rows]


def example_profile(conn: sa.Connection) -> tuple[str, dict[str, Any]] | None:
    """One profile the ESP received (email and fields), to open with `sendwise esp show <email>`."""
    if not _exists(conn, "activation.esp_sync_state"):
        return None
    from dagster_project.privacy.field_crypto import load_cipher

    row = conn.execute(  # the state keeps the email's token and ciphertext
        sa.text("select email_encrypted, fields from activation.esp_sync_state order by customer_key limit 1")
    ).first()
    return (load_cipher().decrypt(row[0]), _loads(row[1])) if row else None


def run_summary(url: str) -> str:
    """The lines the demo prints after the row counts."""
    from dagster_project.warehouse.connection import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            esp = esp_result(conn)
            models = model_figures(conn)
            profile = example_profile(conn)
    finally:
        engine.dispose()
    lines = [f"ESP sync:    {esp}"] if esp else []
    lines += [f"{'Models:' if i == 0 else '':<12} {m}" for i, m in enumerate(models)]
    if profile:
        email, fields = profile
        shown = ", ".join(f"{k}={v}" for k, v in list(fields.items())[:4])
        lines.append(f"A profile:   sendwise esp show {email}   ({shown})")
    return "\n".join(lines)


def _metric_text(metrics: dict[str, Any]) -> str:
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    chosen = [k for k in KEY_METRICS if k in scalars] or list(scalars)
    return ", ".join(f"{k}={_number(scalars[k])}" for k in chosen[:MAX_METRICS]) or "no scalar metrics"


def _number(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else f"{value:,}"


def _loads(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})
