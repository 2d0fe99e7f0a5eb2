"""Plots in the UI: a short Markdown image the webserver serves (shown inline), else a data URI."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.automation.instance import ensure_dagster_home
from dagster_project.automation.ui_images import INLINE_LIMIT, plot_markdown

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000  # a stand-in: only the bytes' round trip matters


def test_a_plot_is_served_from_the_compute_log_folder_on_a_local_instance(tmp_path, monkeypatch) -> None:
    home = tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    saved = tmp_path / "reports" / "centroids.png"
    with dg.DagsterInstance.get() as instance:
        text = plot_markdown(PNG, "centroids", saved, instance, ["ml", "seg-v1", "centroids"])
        served = instance.compute_log_manager.get_captured_local_path(  # the file the /logs route sends
            ["sendwise_plots", "ml", "seg-v1", "centroids"], "png"
        )
    assert text == f"![centroids](/logs/sendwise_plots/ml/seg-v1/centroids/png)\n\nSaved at `{saved}`"
    assert len(text) < INLINE_LIMIT
    assert Path(served).read_bytes() == PNG
    assert Path(served).is_relative_to(home / "storage")


def test_without_local_compute_logs_the_plot_is_a_data_uri() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        text = plot_markdown(b"\x89PNG", "centroids", None, instance, ["ml", "v", "centroids"])
    assert text == "![centroids](data:image/png;base64,iVBORw==)"
    assert plot_markdown(b"\x89PNG", "centroids", None, None, ["x"]) == text


def test_inside_a_step_the_plot_is_served_from_the_running_instance(tmp_path, monkeypatch) -> None:
    from dagster_project.automation.ui_images import current_instance

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    ensure_dagster_home()

    @dg.asset
    def plotted() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"plot": dg.MetadataValue.md(
            plot_markdown(PNG, "plot", None, current_instance(), ["test", "plotted"]))})  # fmt: skip

    assert current_instance() is None  # outside a step
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([plotted], instance=instance)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["plot"].value == "![plot](/logs/sendwise_plots/test/plotted/png)"
