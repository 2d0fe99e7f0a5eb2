"""Alert sensors: a failed run, and sources gone stale, each POSTed once to the alert webhook."""

from __future__ import annotations

import dagster as dg

from dagster_project.settings import get_settings


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs a failed run's job, run id and a line per failed step to SENDWISE_ALERT_WEBHOOK_URL.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext):
    from dagster_project.automation.run_report import step_failure_lines
    from dagster_project.health.alerts import post_alert, run_failure_alert

    url = get_settings().alert_webhook_url
    if not url:
        return dg.SkipReason("SENDWISE_ALERT_WEBHOOK_URL is not set")
    run = context.dagster_run
    reasons = step_failure_lines(context.get_step_failure_events())
    message = context.failure_event.message or "run failed"
    post_alert(url, run_failure_alert(run.job_name, run.run_id, message, reasons))
    return None


@dg.sensor(
    name="alert_on_stale_sources",
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "POSTs to SENDWISE_ALERT_WEBHOOK_URL when a source's last successful load (ops.load_log) is older "
        "than 36 h; once per set of stale sources, not every hour."
    ),
)
def alert_on_stale_sources(context: dg.SensorEvaluationContext):
    import psycopg

    from dagster_project.health.alerts import post_alert, stale_sources, stale_sources_alert
    from dagster_project.health.report import source_freshness
    from dagster_project.warehouse import connection

    settings = get_settings()
    if not settings.alert_webhook_url:
        return dg.SkipReason("SENDWISE_ALERT_WEBHOOK_URL is not set")
    with psycopg.connect(connection.libpq_url(connection.warehouse_url(settings))) as conn:
        freshness = source_freshness(conn)
    stale = stale_sources(freshness)
    state = ",".join(stale)
    if state == (context.cursor or ""):
        return dg.SkipReason(f"stale sources unchanged: {state or 'none'}")
    if stale and not post_alert(settings.alert_webhook_url, stale_sources_alert(freshness, stale)):
        return dg.SkipReason("the alert webhook did not accept the alert; next tick retries")
    context.update_cursor(state)
    return dg.SkipReason(f"alerted: {state}" if stale else "all sources fresh again")
