"""ML assets: KMeans customer segments (+ their profiles) and per-customer send-time predictions.

Thin wrappers: read the marts, call the pure functions of `ml.pipeline`, write ml.*, attach metadata."""

from typing import Any

import dagster as dg
import pandas as pd

from dagster_project.ml import io, send_time_io
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource
from ml.config import MLConfig
from ml.evaluation import truth_by_customer
from ml.pipeline import (
    SEGMENTS_MODEL,
    SEND_TIME_MODEL,
    markdown_table,
    run_segmentation,
    run_send_time,
    segmentation_version,
)
from ml.registry import json_ready
from ml.send_time_refresh import refit_reason

GROUP = "ml"
KINDS = {"scikit-learn", "postgres"}
FEATURES = dg.AssetKey(["fct_customer_features"])
CUSTOMERS = dg.AssetKey(["dim_customers"])
EMAIL_EVENTS = dg.AssetKey(["fct_email_events"])
CUSTOMER_SEGMENTS = dg.AssetKey(["ml", "customer_segments"])
SEGMENT_PROFILES = dg.AssetKey(["ml", "segment_profiles"])
SEND_TIME_PREDICTIONS = dg.AssetKey(["ml", "send_time_predictions"])


def _truth(customers: pd.DataFrame) -> pd.DataFrame | None:
    people = io.read_ground_truth(get_settings().ground_truth_dir)
    return None if people is None else truth_by_customer(people, customers)


def _plot_metadata(plots: dict[str, bytes], version: str) -> dict[str, dg.MetadataValue]:
    from dagster_project.automation.ui_images import current_instance, plot_markdown

    settings = get_settings()
    metadata: dict[str, dg.MetadataValue] = {}
    for name, png in plots.items():
        path = io.save_png(settings.reports_dir, version, name, png)
        shown = plot_markdown(png, name, path, current_instance(), ["ml", version, name])
        metadata[name] = dg.MetadataValue.md(shown)
        metadata[f"{name}_path"] = dg.MetadataValue.path(str(path))
    return metadata


def _json(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(json_ready(value))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CUSTOMER_SEGMENTS,
            deps=[FEATURES, CUSTOMERS],
            group_name=GROUP,
            kinds=KINDS,
            description=(
                "One row per customer: KMeans segment id (stable across runs by Hungarian matching to the "
                "previous run's centroids), readable segment name, distance to its centroid and a "
                "confidence (margin to the second-nearest centroid). k chosen by silhouette among stable k."
            ),
        ),
        dg.AssetSpec(
            SEGMENT_PROFILES,
            deps=[FEATURES],
            group_name=GROUP,
            kinds=KINDS,
            description="Per model version and segment: size, share, centroid in each feature's own units.",
        ),
    ],
)
def customer_segments(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    config = MLConfig()
    settings = get_settings()
    with warehouse.connect() as conn:
        features = io.read_features(conn)
        customers = io.read_customers(conn)
        previous_profiles, previous_assignments = io.previous_segmentation(
            conn, segmentation_version(features, config)
        )
        result = run_segmentation(
            features,
            config,
            previous_profiles,
            previous_assignments,
            truth=_truth(customers),
            stored=io.stored_segmentation(conn, settings.models_dir),
            as_of=io.read_data_as_of(conn),
        )
        version = result.version
        fitted_version = result.run.data_snapshot.get("fitted_version", version)
        if fitted_version == version:
            artefact = io.save_artefact(settings.models_dir, SEGMENTS_MODEL, version, result.model)
        else:  # assigned against the stored model: its artefact is the one in use
            artefact = settings.models_dir / SEGMENTS_MODEL / f"{fitted_version}.joblib"
        assignments = result.assignments
        io.write_segmentation(
            conn, result.run, assignments, result.profiles, list(config.segmentation.features)
        )
    metrics = result.run.metrics
    reason = metrics.get("refit_reason")
    how = f"refit ({reason})" if reason else "assigned to the stored model"
    context.log.info(f"segments {version}: k={metrics['k']}, moved={metrics['moved_customers']}, {how}")
    common = {
        "model_version": dg.MetadataValue.text(version),
        "artefact": dg.MetadataValue.path(str(artefact)),
    }
    scores = {
        name: dg.MetadataValue.float(float(metrics[name]))
        for name in ("silhouette", "stability_ari", "ari_kmeans", "ari_rfm_baseline")
        if name in metrics
    }
    yield dg.MaterializeResult(
        asset_key=CUSTOMER_SEGMENTS,
        metadata={
            **common,
            **scores,
            "dagster/row_count": dg.MetadataValue.int(len(assignments)),
            "k": dg.MetadataValue.int(int(metrics["k"])),
            "moved_customers": dg.MetadataValue.int(int(metrics["moved_customers"])),
            "refit": dg.MetadataValue.bool(bool(metrics.get("refit", True))),
            "refit_reason": dg.MetadataValue.text(str(metrics.get("refit_reason") or "none: assigned")),
            "drift": _json(metrics.get("drift") or {}),
            "k_scores": dg.MetadataValue.md(markdown_table(pd.DataFrame(metrics.get("k_scores", [])))),
            "metrics": _json(metrics),
            "preview": dg.MetadataValue.md(markdown_table(assignments.head(10))),
        },
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENT_PROFILES,
        metadata={
            **common,
            "dagster/row_count": dg.MetadataValue.int(len(result.profiles)),
            "profiles": dg.MetadataValue.md(markdown_table(result.profiles.drop(columns="model_version"))),
            **_plot_metadata(result.plots, version),
        },
    )


@dg.asset(
    key=SEND_TIME_PREDICTIONS,
    deps=[EMAIL_EVENTS, CUSTOMERS, CUSTOMER_SEGMENTS],
    group_name=GROUP,
    kinds=KINDS,
    description=(
        "Per customer: best local hour of the week to send, learned from real opens and clicks (machine "
        "opens excluded) relative to when mail was delivered, shrunk toward segment -> time zone -> global; "
        "the next UTC slot for that hour after the data's as-of (int_calendar__as_of, never the wall "
        "clock), the level the prediction rests on and a confidence. Every run is backtested against "
        "the best global hour and each customer's most frequent past hour."
    ),
)
def send_time_predictions(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    config = MLConfig()
    settings = get_settings()
    with warehouse.connect() as conn:
        customers = io.read_customers(conn)
        segments = io.read_segments(conn)
        as_of = io.read_data_as_of(conn)  # dbt's as-of: send times follow the data, not the clock
        has_stamp, until = send_time_io.events_built_until(conn)
        stored, after = send_time_io.read_stored(conn, settings.models_dir)
        reason = "fct_email_events has no _built_at" if not has_stamp else None
        reason = reason or ("no as-of" if as_of is None else refit_reason(stored, config, as_of))
        if reason is None:  # score the customers whose engagement, zone or segment changed
            assert stored is not None and after is not None and as_of is not None
            result = send_time_io.refresh(conn, stored, after, until, customers, segments, config, as_of)
            artefact = settings.models_dir / SEND_TIME_MODEL / f"{stored.fitted_version}.joblib"
        else:
            events = io.read_email_events(conn)
            previous = send_time_io.read_predictions(conn)
            result = run_send_time(
                events, customers, segments, config, truth=_truth(customers), as_of=as_of, previous=previous
            )
            result.run.data_snapshot.update(refit=True, refit_reason=reason, fitted_version=result.version)
            artefact = io.save_artefact(settings.models_dir, SEND_TIME_MODEL, result.version, result.model)
            send_time_io.write_refit(conn, result, events, customers, segments, until)
    metrics = result.run.metrics
    backtest = metrics["backtest"]
    how = f"refit ({reason})" if reason else f"{metrics['rescored_customers']} customers scored again"
    context.log.info(f"send times {result.version}: {how}, {metrics['source_levels']}")
    headline = {
        f"hit_rate_1h.{method}": dg.MetadataValue.float(backtest[f"{method}.all.hit_rate_1h"])
        for method in ("model", "global_best_hour", "user_most_frequent_hour")
    }
    shown = result.backtest if not result.backtest.empty else pd.DataFrame([backtest])
    return dg.MaterializeResult(
        metadata={
            "model_version": dg.MetadataValue.text(result.version),
            "artefact": dg.MetadataValue.path(str(artefact)),
            "dagster/row_count": dg.MetadataValue.int(len(result.predictions)),
            "contactable_customers": dg.MetadataValue.int(
                int(customers["is_contactable"].fillna(False).sum())
            ),
            "refit_reason": dg.MetadataValue.text(reason or "none: changed customers scored"),
            "rescored_customers": dg.MetadataValue.int(
                int(metrics.get("rescored_customers", len(result.predictions)))
            ),
            **headline,
            "backtest": dg.MetadataValue.md(markdown_table(shown)),
            "source_levels": _json(metrics["source_levels"]),
            "metrics": _json(metrics),
            "preview": dg.MetadataValue.md(markdown_table(result.predictions.head(10))),
            **_plot_metadata(result.plots, result.version),
        }
    )
