"""The whole pipeline on a small synthetic world, the way `make demo` runs it, twice.

Generate -> load every day of events in one run -> build everything (shop/CRM extraction, dbt, checks,
ML, ESP sync to the local sandbox) in a second run. A rerun on unchanged sources must change nothing
that matters and send nothing to the ESP.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import msgpack
import pytest
import sqlalchemy as sa

from dagster_project.cli import main as cli_main
from dagster_project.dbt.project import DBT_PROJECT_DIR, PARTIAL_PARSE_FILE
from dagster_project.settings import get_settings
from dagster_project.warehouse.connection import create_engine


def _counts(url: str, tables: list[str]) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in tables}
    finally:
        engine.dispose()


def _profile_hash(partial_parse: Path) -> str:
    """The profile checksum dbt stored in a partial-parse file (dbt re-parses everything when it differs)."""
    state = msgpack.unpackb(partial_parse.read_bytes(), strict_map_key=False)
    return state["state_check"]["profile_hash"]["checksum"]


@pytest.fixture
def stop_esp_sandbox():
    """The ESP resource starts a background sandbox for this SENDWISE_HOME; stop it afterwards."""
    yield
    from dagster_project.activation.esp_cli import stop
    from dagster_project.activation.resources import sandbox_state_dir

    stop(sandbox_state_dir(get_settings()))


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_rerun(warehouse_url: str, shop_url: str, stop_esp_sandbox):
    from dagster_project.automation.pipeline import materialize_everything
    from dagster_project.definitions import defs

    settings = get_settings()
    assert (
        cli_main(
            [
                "generate",
                "--customers",
                "400",
                "--days",
                "6",
                "--start",
                "2026-03-02",
                "--seed",
                "7",
                "--out",
                str(settings.source_dir),
            ]
        )
        == 0
    )

    instance = dg.DagsterInstance.ephemeral()
    first = materialize_everything(settings, instance=instance, run_config={})
    assert first.success, first.message

    graph = defs.resolve_asset_graph()
    never_materialized = [
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable and instance.get_latest_materialization_event(key) is None
    ]
    assert never_materialized == []

    outputs = [
        "marts.dim_customers",
        "marts.fct_customer_features",
        "ml.customer_segments",
        "ml.send_time_predictions",
        "activation.esp_sync_state",
        "raw.web_events",
        "raw.esp_events",
    ]
    after_first = _counts(warehouse_url, outputs)
    assert all(after_first[t] > 0 for t in outputs), after_first
    assert after_first["ml.customer_segments"] == after_first["marts.fct_customer_features"]

    # the next run starts from this run's parse state, made with the warehouse's profile
    (run_target,) = (DBT_PROJECT_DIR / "target").glob(f"sendwise_dbt-{first.run_ids[-1][:7]}-*")
    kept = DBT_PROJECT_DIR / "target" / PARTIAL_PARSE_FILE
    assert _profile_hash(kept) == _profile_hash(run_target / PARTIAL_PARSE_FILE)

    second = materialize_everything(settings, instance=instance, run_config={})
    assert second.success, second.message
    assert _counts(warehouse_url, outputs) == after_first

    engine = create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            last_sync = (
                conn.execute(
                    sa.text("select * from activation.esp_sync_log order by started_at desc limit 1")
                )
                .mappings()
                .one()
            )
    finally:
        engine.dispose()
    sent = {k: last_sync[k] for k in ("added", "updated", "removed", "requests")}
    assert sent == {"added": 0, "updated": 0, "removed": 0, "requests": 0}, dict(last_sync)
