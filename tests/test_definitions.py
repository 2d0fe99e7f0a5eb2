"""The Definitions load, and the asset graph matches the committed snapshot.

After an intended change to the graph, refresh the snapshot with
`UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_definitions.py` and review its diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "has_description": bool(node.description),
            "checks": sorted(check.name for check in node.check_keys),
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in defs.jobs or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_definitions_load_and_match_the_asset_graph_snapshot():
    from dagster_project.definitions import defs

    defs.resolve_all_job_defs()  # fails on selections or resources that do not resolve
    snapshot = _graph_snapshot(defs)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text())


def test_every_asset_is_described_and_grouped():
    from dagster_project.definitions import defs

    for key, node in _graph_snapshot(defs)["assets"].items():
        assert node["has_description"], f"{key} has no description"
        assert node["group"] != "default", f"{key} is in no group"


def test_asset_descriptions_survive_markdown():
    """The UI renders descriptions as Markdown: `<YYYY-MM-DD>` outside backticks vanished as an HTML tag
    (`web/events/.jsonl`), and `*` pairs turn into emphasis."""
    import re

    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        text = re.sub(r"`[^`]*`", "", graph.get(key).description or "")  # code spans render as written
        hazards = re.findall(r"<[A-Za-z][^>]*>|\*\S[^*]*\*", text)
        assert not hazards, f"{key.to_user_string()}: put {hazards} in backticks"


def test_raw_assets_feed_the_dbt_sources():
    from dagster_project.definitions import defs

    assets = _graph_snapshot(defs)["assets"]
    for table in ("shop_customers", "shop_orders", "crm_contacts", "web_events", "esp_events"):
        children = [k for k, node in assets.items() if f"raw/{table}" in node["deps"]]
        assert children, f"raw/{table} feeds nothing: lineage to dbt is broken"
    assert "fct_customer_features" in assets["ml/customer_segments"]["deps"]


def test_the_code_location_loads_the_way_dagster_dev_loads_it(tmp_path: Path):
    """`dagster dev` loads workspace.yaml; its loader rejects what an import in Python accepts."""
    import subprocess
    import sys

    from dagster_project.settings import PROJECT_ROOT

    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All code locations passed validation" in result.stdout + result.stderr
