"""The one Definitions object of Sendwise: merges the definitions of each concern."""

import dagster as dg

from dagster_project.activation.definitions import defs as activation_defs
from dagster_project.automation.definitions import defs as automation_defs
from dagster_project.dbt.definitions import defs as dbt_defs
from dagster_project.ingestion.definitions import defs as ingestion_defs
from dagster_project.ml.definitions import defs as ml_defs
from dagster_project.quality.definitions import defs as quality_defs

defs = dg.Definitions.merge(ingestion_defs, dbt_defs, quality_defs, ml_defs, activation_defs, automation_defs)
