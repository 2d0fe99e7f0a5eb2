"""`sendwise dev`: the Dagster UI on 127.0.0.1:3000 over the embedded warehouse."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STOP_WITHIN_S = 30  # Ctrl-C: everything stopped, runs canceled, the command exited within this
RUNS_END_WITHIN_S = 12  # of which the running runs get this long to end on their own after terminate


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the UI listens on (0.0.0.0: reachable from other hosts)"
    )


def run(args: argparse.Namespace) -> int:
    from dagster_project import preflight
    from dagster_project.automation.instance import ensure_dagster_home
    from dagster_project.automation.stopping import cancel_leftovers
    from dagster_project.dbt.project import prepare_manifest
    from dagster_project.privacy.masking import mask_url
    from dagster_project.settings import PROJECT_ROOT, get_settings
    from dagster_project.warehouse import connection

    settings = get_settings()
    preflight.check_port(args.host, args.port)
    preflight.check_source_dir(settings)
    preflight.check_warehouse(settings)
    preflight.check_esp(settings)
    home = ensure_dagster_home(settings)
    cancel_leftovers(home)
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    prepare_manifest()
    shown = mask_url(url)
    print(f"warehouse: {shown}\nDagster UI: http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)]
    return supervise(command, PROJECT_ROOT, home)


def supervise(command: list[str], cwd: Path, dagster_home: Path) -> int:
    """Run `dagster dev` in its own session, so that Ctrl-C reaches Sendwise first: on SIGINT/SIGTERM
    the runs are terminated while the code server can still pass that on, then `dagster dev` is stopped
    (killed with everything it started when it takes too long) and what is left is marked CANCELED."""
    from dagster_project.automation.stopping import DEV_PID_FILE

    stop = threading.Event()

    def request_stop(signum: int, _frame) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    pid_file = dagster_home / DEV_PID_FILE
    process = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    pid_file.write_text(str(os.getpid()))
    try:
        while process.poll() is None and not stop.wait(0.5):
            pass
        return stop_everything(process, stopped_by_signal=stop.is_set())
    finally:
        pid_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_everything(process: subprocess.Popen, stopped_by_signal: bool) -> int:
    import dagster as dg

    from dagster_project.automation.stopping import Stopped, cancel_remaining, terminate_runs

    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        stopped = Stopped()
        if process.poll() is None:
            print("sendwise dev: stopping the runs, the daemon and the UI ...", file=sys.stderr, flush=True)
            stopped = terminate_runs(instance, wait_s=RUNS_END_WITHIN_S)
            process.send_signal(signal.SIGINT)  # `dagster dev` shuts down its webserver and daemon
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(1.0, STOP_WITHIN_S - 5 - (time.monotonic() - started)))
        if _group_alive(process.pid):  # what `dagster dev` started and left running (run workers, ...)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stopped = cancel_remaining(instance, stopped)
    what = "stopped the Dagster UI and daemon" if stopped_by_signal else (
        f"dagster dev exited with code {process.returncode}")  # fmt: skip
    print(f"sendwise dev: {what} in {time.monotonic() - started:.0f}s; {stopped.describe()}",
          file=sys.stderr, flush=True)  # fmt: skip
    return 0 if stopped_by_signal else (process.returncode or 1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
