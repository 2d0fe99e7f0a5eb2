"""Activation: ESP profile sync and campaign audiences, with the "esp" resource."""

import dagster as dg

from dagster_project.activation.assets import campaign_audiences, esp_profile_sync
from dagster_project.activation.resources import EspResource

defs = dg.Definitions(assets=[esp_profile_sync, campaign_audiences], resources={"esp": EspResource()})
