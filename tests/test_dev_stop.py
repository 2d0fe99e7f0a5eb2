"""`sendwise dev` stops cleanly on Ctrl-C: the UI, the daemon and the runs, within a bounded time (and,
while it runs, its UI serves the plots the assets link to)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dagster_project.automation import stopping
from dagster_project.automation.dev import STOP_WITHIN_S
from dagster_project.automation.instance import ensure_dagster_home
from dagster_project.automation.ui_images import plot_markdown
from dagster_project.cli import main as cli_main
from dagster_project.settings import PROJECT_ROOT, get_settings
from dagster_project.warehouse import connection

DAY = "2026-02-02"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sendwise dev exited early ({process.returncode}) while waiting for {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_ctrl_c_stops_dev_and_cancels_its_runs(warehouse_url: str, monkeypatch, tmp_path: Path) -> None:
    settings = get_settings()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # restored after the test
    assert cli_main(["generate", "--customers", "20", "--days", "1", "--start", DAY, "--seed", "1",
                     "--out", str(settings.source_dir), "--quiet"]) == 0  # fmt: skip
    home = ensure_dagster_home(settings)
    # The event load of DAY waits for this lock: the run the sensor starts stays STARTED until stopped.
    holder = psycopg.connect(connection.libpq_url(warehouse_url), autocommit=True)
    holder.execute("select pg_advisory_lock(hashtext(%s))", (f"sendwise.load:web_events:{DAY}",))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DAGSTER_HOME": str(home)}
    sendwise = Path(sys.executable).with_name("sendwise")
    log = (tmp_path / "dev.log").open("w+")
    process = subprocess.Popen([str(sendwise), "dev", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/server_info"), 90, "the UI", process)
        with dg.DagsterInstance.get() as instance:
            # the UI serves the plots the assets attach (ui_images): the link in their Markdown works
            markdown = plot_markdown(PNG, "plot", None, instance, ["test", "plot"])
            link = markdown.split("(")[1].rstrip(")")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{link}", timeout=10) as response:
                assert response.headers["Content-Type"] == "image/png"
                assert response.read() == PNG

            def started_run():
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                return runs[0] if runs and stopping.run_worker_pid(instance, runs[0]) else None

            run = _wait_for(started_run, 90, "the sensor's event load to start", process)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=STOP_WITHIN_S + 10)
            assert process.returncode == 0
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
            assert stopping.in_flight_runs(instance) == []
            assert not stopping.is_dagster_process(stopping.run_worker_pid(instance, run))
        log.seek(0)
        last = log.read().strip().splitlines()[-1]
        assert last.startswith("sendwise dev: stopped the Dagster UI and daemon in ")
        assert f"canceled 1 running run ({run.run_id[:8]})" in last
        assert not (home / stopping.DEV_PID_FILE).exists()
    finally:
        if process.poll() is None:  # SIGTERM: sendwise dev stops what it started (its own session)
            process.terminate()
            process.wait(timeout=STOP_WITHIN_S + 10)
        holder.close()
        log.close()


def test_leftover_runs_of_dead_processes_are_canceled_with_one_line(tmp_path, monkeypatch) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names no process
    status = dg.DagsterRunStatus
    runs = {
        "dead-worker": (status.STARTED, {stopping.PID_TAG: str(finished.pid)}),
        "alive-worker": (status.STARTED, {stopping.PID_TAG: str(os.getpid())}),
        "waiting-for-a-gone-dev": (status.NOT_STARTED, {}),  # QUEUED is alike (WAITING)
        "launched-by-a-gone-dev": (status.STARTING, {stopping.GRPC_INFO_TAG: '{"port": 1}'}),
        "someone-elses": (status.STARTED, {}),  # no pid, not launched by dev: left alone
        "done": (status.SUCCESS, {stopping.PID_TAG: str(finished.pid)}),
    }
    with dg.DagsterInstance.get() as instance:
        ids = {}
        for name, (run_status, tags) in runs.items():
            job = dg.GraphDefinition(name="g").to_job(name=name.replace("-", "_"))
            run = instance.create_run_for_job(job, status=run_status, tags=tags)
            ids[name] = run.run_id
        note = stopping.clean_up_leftovers(instance, home)
        after = {name: instance.get_run_by_id(run_id).status for name, run_id in ids.items()}
    assert note is not None and note.strip().startswith("canceled 3 runs left in flight by a stopped")
    assert after == {
        "dead-worker": status.CANCELED,
        "alive-worker": status.STARTED,
        "waiting-for-a-gone-dev": status.CANCELED,
        "launched-by-a-gone-dev": status.CANCELED,
        "someone-elses": status.STARTED,
        "done": status.SUCCESS,
    }


def test_a_running_dev_keeps_its_waiting_runs(tmp_path, monkeypatch) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    dev = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # stands in for dev
    try:
        (home / stopping.DEV_PID_FILE).write_text(str(dev.pid))
        with dg.DagsterInstance.get() as instance:
            job = dg.GraphDefinition(name="g").to_job(name="queued")
            run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.NOT_STARTED)
            assert stopping.clean_up_leftovers(instance, home) is None
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.NOT_STARTED
    finally:
        dev.kill()
        dev.wait()


def test_runs_left_after_dev_stopped_lose_their_worker_and_end_canceled(tmp_path, monkeypatch) -> None:
    from dagster._core.events import EngineEventData

    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    # a run worker that ignored the termination request ("dagster" in its command line, like a real one)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "dagster-run-worker"])
    try:
        with dg.DagsterInstance.get() as instance:
            job = dg.GraphDefinition(name="g").to_job(name="stuck")
            run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED,
                                              tags={stopping.GRPC_INFO_TAG: '{"port": 1}'})  # fmt: skip
            started = EngineEventData.in_process(worker.pid)
            instance.report_engine_event("Started process for run", run, started)
            assert stopping.run_worker_pid(instance, run) == worker.pid
            stopped = stopping.cancel_remaining(instance, stopping.Stopped())
            assert worker.wait(timeout=10) == -signal.SIGKILL
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        assert stopped.describe() == f"canceled 1 running run ({run.run_id[:8]})"
    finally:
        worker.kill()
        worker.wait()
