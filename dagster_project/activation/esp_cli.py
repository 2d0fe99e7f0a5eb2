"""`sendwise esp show <email>` (what the local ESP sandbox holds for a person), `sendwise esp serve|stop`."""

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


def run(args: argparse.Namespace) -> int:
    from dagster_project.activation.resources import sandbox_state_dir
    from dagster_project.settings import get_settings

    settings = get_settings()
    state_dir = sandbox_state_dir(settings)
    if args.esp_command == "serve":
        from dagster_project.activation import sandbox

        argv = ["--host", args.host, "--port", str(args.port), "--state-dir", str(state_dir)]
        if settings.esp_specs_dir.exists():
            argv += ["--specs-dir", str(settings.esp_specs_dir)]
        return sandbox.main(argv)
    if args.esp_command == "stop":
        return stop(state_dir)
    from dagster_project.activation.sandbox import read_state

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
                f"best hour {props.get('sendwise_best_send_hour')})"
            )
        return 0
    return show(state, args.email, as_json=args.json)


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
        print(f"  {key}: {value}")
    return 0


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
