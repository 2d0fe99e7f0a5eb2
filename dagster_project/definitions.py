"""The one Definitions object of Sendwise: merges the definitions of each concern.

Modules, not their `defs`, are imported: Dagster's loader accepts one Definitions at module scope.
"""

import dagster as dg

from dagster_project.activation import definitions as activation
from dagster_project.automation import definitions as automation
from dagster_project.dbt import definitions as dbt
from dagster_project.health import definitions as health
from dagster_project.ingestion import definitions as ingestion
from dagster_project.ml import definitions as ml
from dagster_project.privacy import definitions as privacy
from dagster_project.quality import definitions as quality

defs = dg.Definitions.merge(
    ingestion.defs,
    privacy.defs,
    dbt.defs,
    quality.defs,
    ml.defs,
    activation.defs,
    automation.defs,
    health.defs,
)
