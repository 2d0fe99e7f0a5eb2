"""How dbt nodes become Dagster assets: sources join the raw extraction assets, groups follow folders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

RAW_KEY_PREFIX = "raw"
FOLDER_GROUPS = ("staging", "intermediate", "marts")


class SendwiseDbtTranslator(DagsterDbtTranslator):
    """Source tables -> raw/<table> (the extraction assets' keys); models, seeds, snapshots -> their name."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            if dbt_resource_props.get("source_name") == "privacy":  # the privacy step's asset
                return dg.AssetKey(["privacy", dbt_resource_props["name"]])
            return dg.AssetKey(
                [RAW_KEY_PREFIX, dbt_resource_props["identifier"] or dbt_resource_props["name"]]
            )
        return dg.AssetKey([dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        resource_type = dbt_resource_props["resource_type"]
        if resource_type == "source":
            return RAW_KEY_PREFIX
        if resource_type == "snapshot":
            return "snapshots"
        if resource_type == "seed":
            return "seeds"
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        return folders[0] if folders and folders[0] in FOLDER_GROUPS else "dbt"

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        if any(
            column.get("meta", {}).get("pii") for column in dbt_resource_props.get("columns", {}).values()
        ):
            tags["pii"] = ""
        return tags


def build_translator() -> SendwiseDbtTranslator:
    return SendwiseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
