"""ml/customer_value: CLV, churn risk, next order date, purchase propensity and category affinity per
customer (thin wrapper around `ml.value_pipeline`)."""

import dagster as dg

from dagster_project.ml import io, value_io
from dagster_project.ml.assets import CUSTOMERS, EMAIL_EVENTS, GROUP, KINDS, _json, _plot_metadata
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource
from ml.config import MLConfig
from ml.pipeline import markdown_table
from ml.value_pipeline import CUSTOMER_VALUE_MODEL, run_customer_value
from ml.value_refresh import refit_reason

ORDERS = dg.AssetKey(["fct_orders"])
WEB_SESSIONS = dg.AssetKey(["fct_web_sessions"])
AS_OF = dg.AssetKey(["int_calendar__as_of"])
CUSTOMER_FEATURES = dg.AssetKey(["int_customers__features"])  # its _built_at: whose inputs changed
CUSTOMER_VALUE = dg.AssetKey(["ml", "customer_value"])


@dg.asset(
    key=CUSTOMER_VALUE,
    deps=[ORDERS, CUSTOMERS, EMAIL_EVENTS, WEB_SESSIONS, AS_OF, CUSTOMER_FEATURES],
    group_name=GROUP,
    kinds=KINDS | {"scipy"},
    description=(
        "Per customer, as of the data's as-of: BG/NBD P(alive), expected purchases in 90 / 365 days, "
        "Gamma-Gamma expected order value, predicted CLV over 365 days (undiscounted and discounted), "
        "churn risk = P(no order in 90 days) banded Low/Medium/High, expected next order date, average days "
        "between orders, P(order in 30 days) by gradient boosting, top categories by lift. Below the "
        "documented data minimums the model columns stay null and the run record says why. Refitted every "
        "7 days (or on changed settings); daily runs score the customers whose marts rows were rebuilt "
        "with the stored fit, the others keep their row (model_version, scored_as_of)."
    ),
)
def customer_value(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    config = MLConfig()
    settings = get_settings()
    with warehouse.connect() as conn:
        has_stamps, until = value_io.inputs_built_until(conn)
        stored, after = value_io.read_stored(conn, settings.models_dir)
        as_of = io.read_data_as_of(conn)
        reason = "the customer marts have no _built_at" if not has_stamps else None
        reason = reason or ("no as-of" if as_of is None else refit_reason(stored, config, as_of))
        if reason is None:  # score the customers whose inputs were rebuilt, with the stored fit
            assert stored is not None and after is not None and as_of is not None
            result = value_io.refresh(conn, stored, after, until, config, as_of)
            artefact = settings.models_dir / CUSTOMER_VALUE_MODEL / f"{stored.fitted_version}.joblib"
        else:
            orders = value_io.read_completed_orders(conn)
            as_of = value_io.read_as_of(conn, orders)
            result = run_customer_value(
                value_io.read_value_customers(conn),
                orders,
                as_of,
                email_events=value_io.read_engagement(conn),
                web_sessions=value_io.read_web_sessions(conn),
                config=config,
            )
            result.run.data_snapshot.update(refit=True, refit_reason=reason, fitted_version=result.version)
            artefact = io.save_artefact(
                settings.models_dir, CUSTOMER_VALUE_MODEL, result.version, result.artefact
            )
            value_io.write_customer_value(conn, result.run, result.values, until if has_stamps else None)
    metrics = result.run.metrics
    clv, backtest, propensity = metrics["clv"], metrics["clv_backtest"], metrics["propensity"]
    how = f"refit ({reason})" if reason else f"{metrics['rescored_customers']} customers scored again"
    context.log.info(
        f"customer value {result.version}: {how}; clv {clv['status']} {clv.get('reason') or ''}; "
        f"propensity {propensity['status']} {propensity.get('reason') or ''}"
    )
    headline: dict[str, dg.MetadataValue] = {
        "refit_reason": dg.MetadataValue.text(reason or "none: changed customers scored"),
        "rescored_customers": dg.MetadataValue.int(len(result.values)),
        "clv_status": dg.MetadataValue.text(clv["reason"] or clv["status"]),
        "propensity_status": dg.MetadataValue.text(propensity.get("reason") or propensity["status"]),
    }
    for name in ("forecast_error", "mae_model", "mae_naive_rate"):
        if backtest.get(name) is not None:
            headline[f"clv_backtest.{name}"] = dg.MetadataValue.float(float(backtest[name]))
    for method, scores in propensity.get("backtest", {}).items():
        headline[f"propensity_auc.{method}"] = dg.MetadataValue.float(float(scores["auc"]))
    return dg.MaterializeResult(
        metadata={
            "model_version": dg.MetadataValue.text(result.version),
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
            "artefact": dg.MetadataValue.path(str(artefact)),
            "dagster/row_count": dg.MetadataValue.int(int(metrics["customers"])),
            **headline,
            "campaign_value_by_churn_band": _json(metrics["campaign_value_by_churn_band"]),
            "metrics": _json(metrics),
            "preview": dg.MetadataValue.md(markdown_table(result.values.head(10))),
            **_plot_metadata(result.plots, result.version),
        }
    )
