"""Small CLI behaviours: help texts with defaults, rejected sizes, quiet broken pipes, readable hours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_project.activation.esp_cli import hour_of_week_label, show
from dagster_project.cli import main
from dagster_project.settings import PROJECT_ROOT


@pytest.mark.parametrize("argv", [["demo", "--customers", "0"], ["demo", "--days", "-3"]])
def test_demo_rejects_sizes_below_one(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_help_texts_show_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    demo = capsys.readouterr().out
    assert "(default: 10000)" in demo and "(default: 120)" in demo and "(default: 42)" in demo
    with pytest.raises(SystemExit):
        main(["dev", "--help"])
    dev = capsys.readouterr().out
    assert "port of the Dagster UI (default: 3000)" in dev and "(default: 127.0.0.1)" in dev


def test_best_send_hour_is_shown_as_a_weekday_and_time(capsys) -> None:
    assert hour_of_week_label(105) == "Fri 09:00 (hour of week 105)"  # 4 * 24 + 9, Monday = 0
    assert hour_of_week_label(0) == "Mon 00:00 (hour of week 0)"
    assert hour_of_week_label("167") == "Sun 23:00 (hour of week 167)"
    assert hour_of_week_label(None) == "None" and hour_of_week_label(400) == "400"
    state = {
        "profiles": {"p1": {"id": "p1", "email": "a@example.com", "properties": {
            "sendwise_best_send_hour": 105, "sendwise_segment": "loyal"}}},
        "lists": {},
    }  # fmt: skip
    assert show(state, "a@example.com") == 0
    out = capsys.readouterr().out
    assert "sendwise_best_send_hour: Fri 09:00 (hour of week 105)" in out
    assert "sendwise_segment: loyal" in out


def test_esp_stats_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    state_dir = tmp_path / "home" / "esp_sandbox"
    state_dir.mkdir(parents=True)
    # Far more output than a pipe buffers, so the writer is still writing when `head` exits.
    lists = {f"list-{i:05d}": [] for i in range(20_000)}
    (state_dir / "state.json").write_text(json.dumps({"profiles": {}, "lists": lists}))
    env = {**os.environ, "SENDWISE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(PROJECT_ROOT)}
    stats = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "esp", "stats"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    head = subprocess.run(["head", "-n", "2"], stdin=stats.stdout, capture_output=True, text=True)
    stats.stdout.close()
    stderr = stats.stderr.read().decode()
    assert stats.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert head.stdout.splitlines()[1] == "  list list-00000: 0 members"
