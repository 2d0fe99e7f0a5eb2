"""Activation: ESP profile sync and campaign audiences, with the "esp" resource."""

import dagster as dg

from dagster_project.activation.assets import (
    campaign_audiences,
    esp_profile_sync,
    esp_sync_has_no_failed_records,
)
from dagster_project.activation.resources import EspResource

defs = dg.Definitions(
    assets=[esp_profile_sync, campaign_audiences],
    asset_checks=[esp_sync_has_no_failed_records],
    resources={"esp": EspResource()},
)
