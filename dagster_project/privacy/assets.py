"""The privacy step of every run: pending requests are carried out after the loads, before dbt."""

import dagster as dg

from dagster_project.activation.resources import EspResource
from dagster_project.ingestion.sources import SHOP_TABLES
from dagster_project.privacy.requests import execute_pending_at
from dagster_project.warehouse.resource import WarehouseResource

RAW_STREAMS = (*(t.stream for t in SHOP_TABLES.values()), "crm_contacts", "web_events", "esp_events")


@dg.asset(
    key=["privacy", "suppressed_identities"],
    group_name="privacy",
    kinds={"python", "postgres"},
    deps=[dg.AssetKey(["raw", stream]) for stream in RAW_STREAMS],
    description=(
        "Carries out pending privacy requests (sendwise privacy delete|suppress|unsuppress): deletes people "
        "everywhere and at the ESP, or records their identities' keyed hashes in ops.suppressed_identities, "
        "which the marts and the loaders filter on. Audit in ops.privacy_requests."
    ),
)
def suppressed_identities(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, esp: EspResource
) -> dg.MaterializeResult:
    outcomes = execute_pending_at(warehouse.get_url(), esp.client)
    for outcome in outcomes:
        context.log.info(outcome.summary())
    return dg.MaterializeResult(
        metadata={
            "requests_carried_out": len(outcomes),
            "rows_removed": sum(sum(o.rows_removed.values()) for o in outcomes),
        }
    )
