"""Runs that must not outlive `sendwise dev`: cancel them when it stops, clean up what a crash left behind.

A run counts against the run queue's limit while it is STARTING or STARTED, so a run left STARTED by a
killed process blocks the queue forever; Dagster itself never finds out that its worker is gone.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dagster_project.processes import process_alive

IN_FLIGHT = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
WAITING = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)
PID_TAG = "sendwise/pid"  # the process that executes an in-process run (`sendwise run`, the demo)
GRPC_INFO_TAG = ".dagster/grpc_info"  # set by Dagster on runs its run launcher started (`dagster dev`)
DEV_PID_FILE = "sendwise-dev.pid"


@dataclass
class Stopped:
    """What was stopped: run ids by what happened to them."""

    canceled_waiting: list[str] = field(default_factory=list)
    canceled_running: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for ids, what in ((self.canceled_running, "running"), (self.canceled_waiting, "queued")):
            if ids:
                shown = short_ids(ids)
                parts.append(f"{len(ids)} {what} run{'s' if len(ids) != 1 else ''} ({shown})")
        return "canceled " + " and ".join(parts) if parts else "no run was in flight"


def short_ids(run_ids: list[str]) -> str:
    """The first few run ids, shortened as the UI shows them."""
    return ", ".join(i[:8] for i in run_ids[:5]) + (" ..." if len(run_ids) > 5 else "")


def in_flight_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_FLIGHT))))


def is_dagster_process(pid: int) -> bool:
    """A live process running Dagster (never kill a pid that was reused by something else)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return pid != os.getpid() and b"dagster" in command


def run_worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The process executing the run: Sendwise's tag, else Dagster's "Started process for run" event."""
    if run.tags.get(PID_TAG, "").isdigit():
        return int(run.tags[PID_TAG])
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        pid = record.dagster_event.engine_event_data.metadata.get("pid")  # type: ignore[union-attr]
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value)
    return None


def cancel(instance: dg.DagsterInstance, runs: Iterable[dg.DagsterRun], why: str) -> list[str]:
    """Mark runs CANCELED (they stop counting against the run queue)."""
    ids = []
    for run in runs:
        current = instance.get_run_by_id(run.run_id)
        if current is not None and current.status in IN_FLIGHT:
            instance.report_run_canceled(current, message=why)
            ids.append(run.run_id)
    return ids


def terminate_runs(instance: dg.DagsterInstance, wait_s: float) -> Stopped:
    """Cancel the queued runs (so nothing new starts), ask the running ones to terminate and wait up to
    `wait_s` for them to end. Runs still going afterwards are left to `cancel_remaining`."""
    stopped = Stopped()
    runs = in_flight_runs(instance)
    why = "sendwise dev was stopped"
    stopped.canceled_waiting = cancel(instance, [r for r in runs if r.status in WAITING], why)
    running = [r for r in runs if r.status not in WAITING]
    for run in running:
        try:
            instance.run_launcher.terminate(run.run_id)
        except Exception as error:  # a code server already gone: the run is marked canceled below
            instance.report_engine_event(f"terminate failed: {error}", run)
    deadline = time.monotonic() + wait_s
    while running and time.monotonic() < deadline:
        time.sleep(0.5)
        running = [r for r in running if instance.get_run_by_id(r.run_id).status in IN_FLIGHT]
    ended = {r.run_id for r in runs if r.status not in WAITING} - {r.run_id for r in running}
    canceled = dg.DagsterRunStatus.CANCELED  # not a run that happened to finish meanwhile
    stopped.canceled_running = sorted(i for i in ended if instance.get_run_by_id(i).status == canceled)
    return stopped


def cancel_remaining(instance: dg.DagsterInstance, stopped: Stopped) -> Stopped:
    """After `dagster dev` is gone: kill the workers of runs still in flight and mark the runs CANCELED."""
    for run in in_flight_runs(instance):
        pid = run_worker_pid(instance, run)
        if run.tags.get(PID_TAG) is None and pid is not None and is_dagster_process(pid):
            os.kill(pid, signal.SIGKILL)
        target = stopped.canceled_waiting if run.status in WAITING else stopped.canceled_running
        target += cancel(instance, [run], "sendwise dev was stopped; its run worker did not end in time")
    return stopped


def dev_running(dagster_home: Path) -> int | None:
    """The pid of a `sendwise dev` using this Dagster home, if one is running."""
    pid_file = dagster_home / DEV_PID_FILE
    text = pid_file.read_text().strip() if pid_file.exists() else ""
    return int(text) if text.isdigit() and int(text) != os.getpid() and process_alive(int(text)) else None


def stale_runs(instance: dg.DagsterInstance, dagster_home: Path) -> list[dg.DagsterRun]:
    """Runs in flight whose process is gone: a dead worker, or a run of a `sendwise dev` no longer running.
    Runs of someone else's process that Sendwise cannot see into are left alone."""
    dev_alive = dev_running(dagster_home) is not None
    stale = []
    for run in in_flight_runs(instance):
        pid = run_worker_pid(instance, run)
        if pid is not None:
            if not process_alive(pid):
                stale.append(run)
        elif not dev_alive and (run.status in WAITING or GRPC_INFO_TAG in run.tags):
            stale.append(run)
    return stale


def clean_up_leftovers(instance: dg.DagsterInstance, dagster_home: Path) -> str | None:
    """Mark stale runs CANCELED; one line saying so, or None when there were none."""
    stale = stale_runs(instance, dagster_home)
    if not stale:
        return None
    ids = cancel(instance, stale, "left in flight by a Sendwise process that no longer runs")
    shown = short_ids(ids)
    return (
        f"      canceled {len(ids)} run{'s' if len(ids) != 1 else ''} left in flight by a stopped "
        f"sendwise dev/run ({shown}); they no longer hold the run queue"
    )


def cancel_leftovers(dagster_home: Path) -> None:
    """Cancel the stale runs of the instance in `dagster_home` (DAGSTER_HOME), printing one line if any."""
    import sys

    with dg.DagsterInstance.get() as instance:
        note = clean_up_leftovers(instance, dagster_home)
    if note:
        print(note, file=sys.stderr, flush=True)
