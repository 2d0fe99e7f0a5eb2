"""Preflight: a setting that points at nothing is one line naming the setting, exit 2, in seconds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dagster_project import preflight
from dagster_project.cli import main as cli_main
from dagster_project.settings import get_settings

UNREACHABLE = "postgresql://nobody@127.0.0.1:9/nothing"  # port 9 (discard): nothing listens there


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("WAREHOUSE_URL", "SHOP_URL", "SENDWISE_SOURCE_DIR", "ESP_PROVIDER", "ESP_API_KEY",
                 "ESP_LIST_ID", "SENDWISE_CONFIG", "SENDWISE_ABSENT_SOURCES"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENDWISE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _one_line(argv: list[str], capsys) -> str:
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sendwise: "), captured.err
    return lines[0]


def test_missing_source_dir(env, tmp_path, capsys):
    env.setenv("SENDWISE_SOURCE_DIR", str(tmp_path / "missing"))
    line = _one_line(["run"], capsys)
    assert line.startswith("sendwise: SENDWISE_SOURCE_DIR: ") and "does not exist" in line


def test_unreachable_shop(env, tmp_path, capsys):
    env.setenv("SHOP_URL", UNREACHABLE)
    env.setenv("SENDWISE_SOURCE_DIR", str(tmp_path))
    line = _one_line(["check-sources"], capsys)
    assert line.startswith("sendwise: SHOP_URL: cannot connect to postgresql://nobody@127.0.0.1:9/nothing")


def test_unreachable_warehouse(env, capsys):
    env.setenv("WAREHOUSE_URL", UNREACHABLE)
    line = _one_line(["run"], capsys)
    assert line.startswith("sendwise: WAREHOUSE_URL: cannot connect to") and "fix the URL" in line


def test_password_is_not_printed(env, capsys):
    env.setenv("WAREHOUSE_URL", "postgresql://me:s3cret@127.0.0.1:9/db")
    line = _one_line(["demo"], capsys)
    assert "s3cret" not in line and "me:***@" in line


def test_unknown_esp_provider(env, capsys):
    env.setenv("ESP_PROVIDER", "nonsense")
    line = _one_line(["demo"], capsys)
    assert line == "sendwise: ESP_PROVIDER: 'nonsense' is not one of sandbox, klaviyo, mailchimp"


@pytest.mark.parametrize("provider", ["klaviyo", "mailchimp"])
def test_real_esp_without_api_key(env, capsys, provider):
    env.setenv("ESP_PROVIDER", provider)
    env.setenv("ESP_LIST_ID", "L1")
    line = _one_line(["sync"], capsys)
    assert line.startswith(f"sendwise: ESP_API_KEY: ESP_PROVIDER={provider} needs an API key")


def test_dry_run_sync_needs_no_api_key(env):
    env.setenv("ESP_PROVIDER", "klaviyo")
    env.setenv("ESP_LIST_ID", "L1")
    preflight.check_esp(get_settings(), dry_run=True)  # no error
    with pytest.raises(preflight.PreflightError, match="ESP_API_KEY"):
        preflight.check_esp(get_settings())


def test_real_esp_without_list(env, capsys):
    env.setenv("ESP_PROVIDER", "klaviyo")
    env.setenv("ESP_API_KEY", "pk_x")
    assert _one_line(["run"], capsys).startswith("sendwise: ESP_LIST_ID: ")


def test_dev_port_taken(env, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(["dev", "--port", str(port)], capsys)
    assert (
        line.startswith(f"sendwise: --port: 127.0.0.1:{port} is already in use") and "another --port" in line
    )


def test_unknown_threshold_key(env, capsys):
    env.setenv("SENDWISE_QUALITY_THRESHOLDS", "raw_shop_customers.no_such_check=0.5")
    line = _one_line(["run"], capsys)
    assert line.startswith("sendwise: SENDWISE_QUALITY_THRESHOLDS: raw_shop_customers.no_such_check: suite")
