"""The dbt project as Dagster assets: one `dbt build` (models, seeds, snapshot and tests as checks).

A failing error-severity dbt test makes dbt skip what is downstream of it and the step fail, so assets
that depend on the dbt models in the same run (quality gates, ML, ESP sync) do not run.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.dbt.project import keep_partial_parse, prepare_manifest, sendwise_dbt_project
from dagster_project.dbt.translator import build_translator
from dagster_project.warehouse.connection import dbt_env
from dagster_project.warehouse.resource import WarehouseResource

prepare_manifest()


@contextmanager
def warehouse_environment(url: str) -> Iterator[None]:
    """Point dbt/profiles.yml (SENDWISE_PG_* variables) at `url` for the duration of a dbt command."""
    variables = dbt_env(url)
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=sendwise_dbt_project.manifest_path,
    project=sendwise_dbt_project,
    dagster_dbt_translator=build_translator(),
    name="sendwise_dbt",
)
def sendwise_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """`dbt build` of the selected models: staging, identity resolution, profiles, features, tests."""
    with warehouse_environment(warehouse.get_url()):
        invocation = dbt.cli(["build"], context=context)
        try:
            yield from invocation.stream()
        finally:
            keep_partial_parse(invocation.target_path)
