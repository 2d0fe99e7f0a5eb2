"""Activation assets: profiles (segments, send times, scores) and campaign audiences pushed to the ESP."""

import dagster as dg
import pandas as pd
import psycopg

from dagster_project.activation.resources import EspResource
from dagster_project.activation.sync import SyncResult, run_sync
from dagster_project.activation.triggers import AudienceResult, load_triggers, sync_all_audiences
from dagster_project.ml.value_io import campaign_value_by_audience
from dagster_project.privacy.masking import mask_email
from dagster_project.warehouse.connection import libpq_url
from dagster_project.warehouse.resource import WarehouseResource
from ml.config import MLConfig
from ml.pipeline import markdown_table

GROUP = "activation"
PROFILE_INPUTS = [
    dg.AssetKey(["ml", "customer_segments"]),
    dg.AssetKey(["ml", "send_time_predictions"]),
    dg.AssetKey(["dim_customers"]),
    dg.AssetKey(["fct_customer_features"]),
]


def masked(text: str | None) -> str:
    """`text` with every email in it masked (`jane@example.com` -> `j***@example.com`): the Dagster
    UI has no auth, so its metadata shows no address (customer keys identify the rows instead)."""
    return mask_email(text or "")


class SyncConfig(dg.Config):
    dry_run: bool = False
    """Plan and report what would change without sending anything to the ESP."""
    full_resync: bool = False
    """Push every contactable profile again, changed or not (after the ESP side lost data)."""


def sync_metadata(result: SyncResult, list_id: str, base_url: str) -> dict[str, dg.MetadataValue]:
    summary = result.summary()
    metadata: dict[str, dg.MetadataValue] = {
        key: dg.MetadataValue.int(int(summary[key]))
        for key in ("planned", "added", "updated", "unchanged", "removed", "rejected", "failed", "requests")
    }
    metadata.update(
        {
            "status": dg.MetadataValue.text(result.status),
            "dry_run": dg.MetadataValue.bool(result.dry_run),
            "not_contactable_skipped": dg.MetadataValue.int(result.plan.not_contactable),
            "diffed": dg.MetadataValue.text(
                "every customer"
                if result.plan.candidates is None
                else f"{result.plan.candidates} changed customers (the others kept)"
            ),
            "duration_s": dg.MetadataValue.float(round(result.duration_seconds, 3)),
            "destination": dg.MetadataValue.text(f"{result.destination} at {base_url}"),
            "list_id": dg.MetadataValue.text(list_id),
            "run_id": dg.MetadataValue.text(result.run_id),
            "changes_preview": dg.MetadataValue.md(changes_table(result)),
        }
    )
    if result.problems:
        metadata["problems"] = dg.MetadataValue.md(
            "| status | customer_key | email | reason |\n|---|---|---|---|\n"
            + "\n".join(
                f"| {p.status} | {p.customer_key} | {masked(p.email)} | {masked(p.reason)[:120]} |"
                for p in result.problems[:20]
            )
        )
    return metadata


def changes_table(result: SyncResult, limit: int = 10) -> str:
    rows = [
        "| change | customer_key | email | segment | best hour of week | next send (UTC) |",
        "|---|---|---|---|---|---|",
    ]
    plan = result.plan
    for change, records in (("add", plan.to_add), ("update", plan.to_update), ("remove", plan.to_remove)):
        for record in records[:limit]:
            props = record.properties
            rows.append(
                f"| {change} | {record.customer_key} | {masked(record.email)} | "
                f"{props.get('sendwise_segment', '')} | "
                f"{props.get('sendwise_best_send_hour', '')} | {props.get('sendwise_next_send_at', '')} |"
            )
    return "\n".join(rows) if len(rows) > 2 else "no changes"


@dg.asset(
    key=["activation", "esp_profile_sync"],
    group_name=GROUP,
    kinds={"python", "postgres", "klaviyo"},
    deps=PROFILE_INPUTS,
    description=(
        "Pushes contactable customers with their ML segment, best send hour, next send time, engagement "
        "score and lifetime value to the ESP list Sendwise manages; diff-based (only new/changed profiles), "
        "removes people who stopped being contactable. State, per-record outcomes and a sync log live in "
        "schema activation."
    ),
)
def esp_profile_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, esp: EspResource
) -> dg.MaterializeResult:
    client, target = (None, esp.target()) if config.dry_run else esp.client()
    try:
        with psycopg.connect(libpq_url(warehouse.get_url())) as conn:
            result = run_sync(
                conn,
                client,
                target.destination,
                target.list_id,
                dry_run=config.dry_run,
                full_resync=config.full_resync,
            )
    finally:
        if client is not None:
            client.close()
    context.log.info(f"ESP profile sync: {result.summary()}")
    if not config.dry_run and result.plan.planned and not (result.added + result.updated + result.removed):
        raise dg.Failure(
            f"ESP sync {result.run_id}: none of {result.plan.planned} changes went through",
            metadata=sync_metadata(result, target.list_id, target.base_url),
        )
    return dg.MaterializeResult(metadata=sync_metadata(result, target.list_id, target.base_url))


def audiences_table(results: list[AudienceResult]) -> str:
    return (
        "| trigger | list | new executions | synced | skipped (consent) | removed (consent) | failed "
        "| note |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + (
            "\n".join(
                f"| {r.trigger_id} | {r.list_id} | {r.new_executions} | {r.synced_customers or r.pending} | "
                f"{r.skipped_not_contactable} | {r.removed_not_contactable} | {r.failed} | "
                f"{'selects nobody: ' + r.not_ready if r.not_ready else ''} |"
                for r in results
            )
        )
    )


@dg.asset(
    key=["activation", "campaign_audiences"],
    group_name=GROUP,
    kinds={"python", "postgres", "klaviyo"},
    deps=[dg.AssetKey(["fct_orders"]), dg.AssetKey(["activation", "esp_profile_sync"]), *PROFILE_INPUTS],
    description=(
        "Campaign triggers from activation/triggers.yaml compiled to SQL over the marts; each (customer, "
        "triggering event) is executed once (activation.campaign_executions) and the customer added to the "
        "trigger's ESP list."
    ),
)
def campaign_audiences(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, esp: EspResource
) -> dg.MaterializeResult:
    client = None if config.dry_run else esp.client()[0]
    try:
        with psycopg.connect(libpq_url(warehouse.get_url())) as conn:
            results = sync_all_audiences(conn, client, load_triggers(), dry_run=config.dry_run)
            executions = conn.execute("select count(*) from activation.campaign_executions").fetchone()[0]
            values = campaign_value_by_audience(conn, MLConfig().propensity.cost_per_send)
    finally:
        if client is not None:
            client.close()
    for r in results:
        context.log.info(f"audience {r.trigger_id}: {r}")
    return dg.MaterializeResult(
        metadata={
            "dry_run": dg.MetadataValue.bool(config.dry_run),
            "triggers": dg.MetadataValue.int(len(results)),
            "new_executions": dg.MetadataValue.int(sum(r.new_executions for r in results)),
            "synced_customers": dg.MetadataValue.int(sum(r.synced_customers for r in results)),
            "failed": dg.MetadataValue.int(sum(r.failed for r in results)),
            "executions_total": dg.MetadataValue.int(int(executions)),
            "audiences": dg.MetadataValue.md(audiences_table(results)),
            **_campaign_value_metadata(values),
        }
    )


def _campaign_value_metadata(values: pd.DataFrame | None) -> dict[str, dg.MetadataValue]:
    """Expected value per audience, once ml.customer_value exists."""
    return {} if values is None else {"expected_campaign_value": dg.MetadataValue.md(markdown_table(values))}


@dg.asset_check(
    asset=esp_profile_sync,
    description="The last real sync left no customer rejected or failed (they are retried on the next run).",
    blocking=False,
)
def esp_sync_has_no_failed_records(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with psycopg.connect(libpq_url(warehouse.get_url())) as conn:
        row = conn.execute(
            "select run_id, status, failed, rejected from activation.esp_sync_log "
            "where not dry_run and status <> 'running' order by started_at desc limit 1"
        ).fetchone()
        reasons = conn.execute(
            "select reason, count(*) from activation.esp_sync_outcomes where run_id = %s "
            "group by reason order by 2 desc limit 5",
            (row[0] if row else "",),
        ).fetchall()
    if row is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no sync has run yet"})
    run_id, status, failed, rejected = row
    return dg.AssetCheckResult(
        passed=status == "success",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "run_id": run_id,
            "status": status,
            "failed": int(failed or 0),
            "rejected": int(rejected or 0),
            "top_reasons": dg.MetadataValue.md(
                "| reason | records |\n|---|---|\n"
                + "\n".join(f"| {masked(r)[:150]} | {n} |" for r, n in reasons)
            ),
        },
    )
