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

ORDERS = dg.AssetKey(["fct_orders"])
WEB_SESSIONS = dg.AssetKey(["fct_web_sessions"])
AS_OF = dg.AssetKey(["int_calendar__as_of"])
CUSTOMER_VALUE = dg.AssetKey(["ml", "customer_value"])


@dg.asset(
    key=CUSTOMER_VALUE,
    deps=[ORDERS, CUSTOMERS, EMAIL_EVENTS, WEB_SESSIONS, AS_OF],
    group_name=GROUP,
    kinds=KINDS | {"scipy"},
    description=(
        "Per customer, as of the data's as-of: BG/NBD P(alive), expected purchases in 90 / 365 days, "
        "Gamma-Gamma expected order value, predicted CLV over 365 days (undiscounted and discounted), "
        "churn risk = P(no order in 90 days) banded Low/Medium/High, expected next order date, average days "
        "between orders, P(order in 30 days) by gradient boosting, top categories by lift. Below the "
        "documented data minimums the model columns stay null and the run record says why."
    ),
)
def customer_value(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    config = MLConfig()
    settings = get_settings()
    with warehouse.connect() as conn:
        orders = value_io.read_completed_orders(conn)
        customers = value_io.read_value_customers(conn)
        as_of = value_io.read_as_of(conn, orders)
        result = run_customer_value(
            customers,
            orders,
            as_of,
            email_events=value_io.read_engagement(conn),
            web_sessions=value_io.read_web_sessions(conn),
            config=config,
        )
        artefact = io.save_artefact(
            settings.models_dir, CUSTOMER_VALUE_MODEL, result.version, result.artefact
        )
        value_io.write_customer_value(conn, result.run, result.values)
    metrics = result.run.metrics
    clv, backtest, propensity = metrics["clv"], metrics["clv_backtest"], metrics["propensity"]
    context.log.info(
        f"customer value {result.version}: clv {clv['status']} {clv.get('reason') or ''}; "
        f"propensity {propensity['status']} {propensity.get('reason') or ''}"
    )
    headline: dict[str, dg.MetadataValue] = {
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
            "dagster/row_count": dg.MetadataValue.int(len(result.values)),
            **headline,
            "campaign_value_by_churn_band": _json(metrics["campaign_value_by_churn_band"]),
            "metrics": _json(metrics),
            "preview": dg.MetadataValue.md(markdown_table(result.values.head(10))),
            **_plot_metadata(result.plots, result.version),
        }
    )
