"""dbt concern: the dbt assets (with their tests as asset checks) and the "dbt" resource.

The assets also need the shared "warehouse" resource, which the top-level definitions provide.
"""

import dagster as dg

from dagster_project.dbt.assets import sendwise_dbt
from dagster_project.dbt.full_tests import dbt_full_tests, weekly_full_dbt_tests
from dagster_project.dbt.project import dbt_resource

defs = dg.Definitions(
    assets=[sendwise_dbt],
    jobs=[dbt_full_tests],
    schedules=[weekly_full_dbt_tests],
    resources={"dbt": dbt_resource()},
)
