"""`ops/health_report`: the health report as an asset, its figures as tables and plots in the UI."""

import dagster as dg

from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource

HEALTH_REPORT = dg.AssetKey(["ops", "health_report"])


def _markdown(frame) -> str:
    return "_no data yet_" if frame.empty else frame.head(30).to_markdown(index=False, floatfmt=".3g")


@dg.asset(
    key=HEALTH_REPORT,
    group_name="ops",
    kinds={"postgres", "python"},
    deps=[dg.AssetKey(["activation", "esp_profile_sync"]), dg.AssetKey(["activation", "campaign_audiences"])],
    description=(
        "Health of the integration: per source freshness and last load, quarantine and failed-load rates "
        "per day, data-quality pass rate per suite, ESP sync status and error rates, trigger executions, "
        "profile statistics, warehouse size and the slowest dbt models (also: `sendwise status`)."
    ),
)
def health_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from dagster_project.automation.ui_images import plot_markdown
    from dagster_project.health.plots import health_plots
    from dagster_project.health.report import health_frames

    with warehouse.connect() as conn:
        frames = health_frames(conn)
    metadata: dict[str, dg.MetadataValue] = {
        title: dg.MetadataValue.md(_markdown(frame)) for title, frame in frames.items()
    }
    reports_dir = get_settings().reports_dir
    for name, png in health_plots(frames).items():
        path = reports_dir / "health" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        key = ["health", context.run_id, name]
        metadata[f"plot_{name}"] = dg.MetadataValue.md(plot_markdown(png, name, path, context.instance, key))
    context.log.info(f"health report: {len(frames)} sections, plots in {reports_dir / 'health'}")
    return dg.MaterializeResult(metadata=metadata)
