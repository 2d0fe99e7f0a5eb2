"""`sendwise sync [--dry-run]`: push profiles (segments, send times) and campaign audiences to the ESP."""

from __future__ import annotations

import argparse
import sys

# Exit codes: each outcome its own, so that a scheduler can tell "try again later" from "fix it".
EXIT_SUCCESS = 0
EXIT_PARTIAL = 1  # some records were rejected or failed (logged in activation.esp_sync_outcomes)
EXIT_BAD_SETTINGS = 2  # ESP_PROVIDER / ESP_API_KEY / ESP_LIST_ID missing or wrong
EXIT_ALREADY_RUNNING = 3  # another sync to the same destination holds its lock: nothing was done
EXIT_CODES_HELP = (
    f"exit codes: {EXIT_SUCCESS} success (or dry run), {EXIT_PARTIAL} partial (some records rejected or "
    f"failed; see activation.esp_sync_outcomes), {EXIT_BAD_SETTINGS} bad settings, "
    f"{EXIT_ALREADY_RUNNING} another sync to this destination is running (nothing done; try again later)"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_CODES_HELP
    parser.add_argument("--dry-run", action="store_true", help="print what would change; send nothing")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--profiles-only", action="store_true", help="skip the campaign audiences")
    only.add_argument("--audiences-only", action="store_true", help="skip the profile sync")
    parser.add_argument("--marts-schema", default="marts", help="schema of the dbt marts (default: marts)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="profiles per ESP request (default: API max)"
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="first compare the ESP list with Sendwise's intent (members read from the ESP) and repair it",
    )
    parser.add_argument(
        "--full-resync", action="store_true", help="push every contactable profile again, changed or not"
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project.activation.sync import SyncAlreadyRunning

    try:
        return _run(args)
    except SyncAlreadyRunning as error:
        print(f"sync not started: {error}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except BadSettings as error:
        print(f"sync not started: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS


class BadSettings(Exception):
    """The ESP settings cannot make a client (provider, key or list missing or wrong)."""


def _run(args: argparse.Namespace) -> int:
    import psycopg

    from dagster_project import preflight
    from dagster_project.activation.resources import build_client, resolve_target
    from dagster_project.activation.sync import run_sync
    from dagster_project.activation.triggers import load_triggers, sync_all_audiences
    from dagster_project.settings import get_settings
    from dagster_project.warehouse.connection import ensure_schemas, libpq_url, warehouse_url

    settings = get_settings()
    preflight.check_warehouse(settings)
    preflight.check_esp(settings, dry_run=args.dry_run)
    try:
        target = resolve_target(settings)
    except ValueError as error:
        raise BadSettings(str(error)) from None
    url = warehouse_url(settings)
    ensure_schemas(url)
    client = None
    if not args.dry_run:
        client, target = build_client(settings, upsert_batch_size=args.batch_size)
    print(
        f"ESP: {target.provider} at {target.base_url}, list {target.list_id}"
        + (" (dry run)" if args.dry_run else "")
    )
    status = 0
    with psycopg.connect(libpq_url(url)) as conn:
        if args.reconcile and client is not None:
            from dagster_project.activation.sync import reconcile

            repaired = reconcile(conn, client, target.destination, target.list_id, args.marts_schema)
            print(
                f"reconcile: {repaired.members} list members in the ESP, {repaired.extra_removed} removed "
                f"(not intended), {repaired.missing_forgotten} missing (will be re-added)"
            )
        if not args.audiences_only:
            result = run_sync(
                conn,
                client,
                target.destination,
                target.list_id,
                dry_run=args.dry_run,
                marts_schema=args.marts_schema,
                full_resync=args.full_resync,
            )
            print(format_summary(result.summary()))
            if args.dry_run:
                print_preview(result)
            for problem in result.problems[:10]:
                print(f"  {problem.status}: {problem.email} ({problem.customer_key}): {problem.reason}")
            status = EXIT_PARTIAL if result.status not in ("success", "dry_run") else EXIT_SUCCESS
        if not args.profiles_only:
            for audience in sync_all_audiences(
                conn, client, load_triggers(), marts_schema=args.marts_schema, dry_run=args.dry_run
            ):
                if audience.not_ready:
                    print(
                        f"audience {audience.trigger_id} -> list {audience.list_id}: selects nobody: "
                        f"{audience.not_ready}"
                    )
                    continue
                verb = "would add" if args.dry_run else "added"
                count = audience.pending if args.dry_run else audience.synced_customers
                print(
                    f"audience {audience.trigger_id} -> list {audience.list_id}: "
                    f"{audience.new_executions} new executions, {verb} {count} customers, "
                    f"{audience.skipped_not_contactable} skipped and "
                    f"{audience.removed_not_contactable} removed (no longer contactable), "
                    f"{audience.failed} failed"
                )
                status = status or (EXIT_PARTIAL if audience.failed else EXIT_SUCCESS)
            for line in campaign_value_lines(conn):
                print(line)
    if client is not None:
        client.close()
    return status


def campaign_value_lines(conn) -> list[str]:
    """Per audience, the expected value of one send to its members (once ml.customer_value exists)."""
    from dagster_project.ml.value_io import campaign_value_by_audience
    from ml.config import MLConfig

    values = campaign_value_by_audience(conn, MLConfig().propensity.cost_per_send)
    if values is None:
        return []
    return [
        f"audience {row.trigger_id}: expected campaign value {row.expected_value:.2f} = "
        f"{row.expected_orders:.1f} expected orders worth {row.expected_revenue:.2f} "
        f"- {row.send_cost:.2f} for {row.members} sends"
        for row in values.itertuples()
    ]


def format_summary(summary: dict) -> str:
    keys = (
        "status",
        "planned",
        "to_add",
        "to_update",
        "to_remove",
        "unchanged",
        "not_contactable",
        "added",
        "updated",
        "removed",
        "rejected",
        "failed",
        "requests",
        "duration_seconds",
    )
    return "profiles: " + ", ".join(f"{key}={summary[key]}" for key in keys)


def print_preview(result, limit: int = 10) -> None:
    plan = result.plan
    for label, records in (("add", plan.to_add), ("update", plan.to_update), ("remove", plan.to_remove)):
        for record in records[:limit]:
            segment = record.properties.get("sendwise_segment")
            hour = record.properties.get("sendwise_best_send_hour")
            print(
                f"  would {label}: {record.email} ({record.customer_key}) segment={segment} best_hour={hour}"
            )
        if len(records) > limit:
            print(f"  … and {len(records) - limit} more to {label}")
