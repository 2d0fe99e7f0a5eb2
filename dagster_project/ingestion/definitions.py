"""Extraction into the warehouse's raw schema: seven assets and the "sources" resource."""

from __future__ import annotations

import dagster as dg

from dagster_project.ingestion.assets import build_assets
from dagster_project.ingestion.partitions import events_partitions_def
from dagster_project.ingestion.sources import SourcesResource
from dagster_project.settings import Settings
from dagster_project.warehouse.resource import WarehouseResource

RAW_ASSETS = dg.AssetSelection.groups("raw")
RAW_TABLE_ASSETS = dg.AssetSelection.assets(
    *(["raw", name] for name in ("shop_customers", "shop_products", "shop_orders", "shop_order_items"))
) | dg.AssetSelection.assets(["raw", "crm_contacts"])
RAW_EVENT_ASSETS = dg.AssetSelection.assets(["raw", "web_events"], ["raw", "esp_events"])


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """The partitions' start date comes from the settings, so they are read when Definitions load."""
    return dg.Definitions(
        assets=build_assets(events_partitions_def(settings)),
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
    )


defs = build_defs()
