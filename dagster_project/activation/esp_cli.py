"""`sendwise esp show <email>` (what the local ESP sandbox holds for a person), `sendwise esp serve|stop`,
`sendwise esp pull` (engagement events from the ESP's events API into the ESP event files)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="esp_command", required=True)
    show = sub.add_parser("show", help="print the sandbox profile and list memberships of an email")
    show.add_argument("email")
    show.add_argument("--json", action="store_true", help="print the profile as JSON")
    serve = sub.add_parser("serve", help="run the local ESP sandbox in the foreground")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1")
    sub.add_parser("stop", help="stop a sandbox started in the background by a sync")
    sub.add_parser("stats", help="counts of what the sandbox holds, and a few emails to show")
    pull = sub.add_parser(
        "pull", help="pull engagement events from the ESP's events API into esp/events/<day>.jsonl"
    )
    pull.add_argument(
        "--since",
        type=_aware_datetime,
        help="ISO-8601 time to pull from (default: the last pulled event's time, less an hour)",
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project.activation.resources import sandbox_state_dir
    from dagster_project.settings import get_settings

    settings = get_settings()
    if args.esp_command == "pull":
        return pull(settings, args.since)
    state_dir = sandbox_state_dir(settings)
    if args.esp_command == "serve":
        from dagster_project.activation import sandbox

        argv = ["--host", args.host, "--port", str(args.port), "--state-dir", str(state_dir)]
        if settings.esp_specs_dir.exists():
            argv += ["--specs-dir", str(settings.esp_specs_dir)]
        return sandbox.main(argv)
    if args.esp_command == "stop":
        return stop(state_dir)
    from dagster_project.activation.sandbox_store import read_state

    state = read_state(state_dir)
    if args.esp_command == "stats":
        print(f"sandbox state {state_dir}: {len(state['profiles'])} profiles")
        for list_id, members in sorted(state["lists"].items()):
            print(f"  list {list_id}: {len(members)} members")
        for profile in list(state["profiles"].values())[:3]:
            props = profile.get("properties") or {}
            print(
                f"  e.g. sendwise esp show {profile.get('email')}   "
                f"(segment {props.get('sendwise_segment')!r}, "
                f"best send time {hour_of_week_label(props.get('sendwise_best_send_hour'))})"
            )
        return 0
    return show(state, args.email, as_json=args.json)


def _aware_datetime(value: str):
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--since {value!r}: not an ISO-8601 time ({error})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pull(settings, since) -> int:
    from dagster_project.activation.events_pull import pull_with_settings

    result = pull_with_settings(settings, since)
    start = result.since.isoformat() if result.since else "the beginning"
    print(f"pulled {result.pulled} events since {start}; wrote {result.written} new")
    for day in result.days:
        print(f"  {settings.source_dir / 'esp' / 'events' / f'{day}.jsonl'}: +{result.written_per_day[day]}")
    print(f"high-water mark: {result.high_water_mark or 'none'}")
    return 0


def show(state: dict, email: str, as_json: bool = False) -> int:
    import orjson

    wanted = email.strip().lower()
    profile = next((p for p in state["profiles"].values() if (p.get("email") or "").lower() == wanted), None)
    if profile is None:
        print(f"{email}: no profile in the ESP sandbox ({len(state['profiles'])} profiles there)")
        return 1
    lists = sorted(list_id for list_id, members in state["lists"].items() if profile["id"] in members)
    if as_json:
        print(orjson.dumps({**profile, "lists": lists}, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"profile {profile['id']}  {profile.get('email')}")
    name = " ".join(filter(None, [profile.get("first_name"), profile.get("last_name")]))
    print(f"  name:        {name or '-'}")
    print(f"  external_id: {profile.get('external_id') or '-'}")
    print(f"  updated:     {profile.get('updated')}")
    print(f"  lists:       {', '.join(lists) or '(none)'}")
    for key, value in sorted((profile.get("properties") or {}).items()):
        print(f"  {key}: {hour_of_week_label(value) if key == HOUR_OF_WEEK_PROPERTY else value}")
    return 0


HOUR_OF_WEEK_PROPERTY = "sendwise_best_send_hour"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_of_week_label(value) -> str:
    """An hour of the week (0 = Monday 00:00, local time) as `Fri 09:00 (hour of week 105)`."""
    try:
        hour = int(value)
    except (TypeError, ValueError):
        return str(value)
    if not 0 <= hour < 168:
        return str(value)
    return f"{_WEEKDAYS[hour // 24]} {hour % 24:02d}:00 (hour of week {hour})"


def stop(state_dir) -> int:
    import os
    import signal

    pid_file = state_dir / "server.pid"
    if not pid_file.exists():
        print("no sandbox pid file; nothing to stop")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        print(f"stopped the ESP sandbox (pid {pid})")
    except ProcessLookupError:
        print(f"the ESP sandbox (pid {pid}) was not running")
    pid_file.unlink(missing_ok=True)
    (state_dir / "server.url").unlink(missing_ok=True)
    return 0
