"""The one Definitions object of Sendwise: merges the definitions of each concern."""

import dagster as dg

from dagster_project.warehouse.resource import WarehouseResource

defs = dg.Definitions(resources={"warehouse": WarehouseResource()})
