"""Settings: environment variables over an optional project file, validated with errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_project.cli import main as cli_main
from dagster_project.quality.suites import apply_thresholds, check_bounds, load_suites
from dagster_project.settings import SettingsError, get_settings

CONFIG = """
warehouse_url = "postgresql://wh@db.example/warehouse"

[sources]
shop_url = "postgresql://shop@db.example/shop"
source_dir = "exports"          # relative to this file
absent = ["crm", "web"]

[quality.thresholds]
"raw_shop_customers.email_null_share" = 0.2
"raw_shop_orders.row_count_vs_previous_run" = 0.5

[esp]
provider = "klaviyo"
list_id = "L1"
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "WAREHOUSE_URL",
        "SHOP_URL",
        "SENDWISE_SOURCE_DIR",
        "SENDWISE_ABSENT_SOURCES",
        "ESP_PROVIDER",
        "ESP_LIST_ID",
        "ESP_API_KEY",
        "SENDWISE_QUALITY_THRESHOLDS",
        "SENDWISE_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_project_file_is_read_and_the_environment_overrides_it(clean_env: Path, monkeypatch):
    (clean_env / "sendwise.toml").write_text(CONFIG)
    settings = get_settings()
    assert settings.warehouse_url == "postgresql://wh@db.example/warehouse"
    assert settings.shop_url == "postgresql://shop@db.example/shop"
    assert settings.source_dir == (clean_env / "exports").resolve() and settings.source_dir_configured
    assert settings.absent_sources == ("crm", "web")
    assert settings.quality_thresholds["raw_shop_customers.email_null_share"] == 0.2
    assert (settings.esp_provider, settings.esp_list_id) == ("klaviyo", "L1")
    assert settings.config_file == (clean_env / "sendwise.toml").resolve()

    monkeypatch.setenv("SHOP_URL", "postgresql://other@db.example/shop")
    monkeypatch.setenv("SENDWISE_ABSENT_SOURCES", "esp")
    settings = get_settings()
    assert settings.shop_url == "postgresql://other@db.example/shop"
    assert settings.absent_sources == ("esp",)


def test_without_a_file_the_defaults_hold(clean_env: Path):
    settings = get_settings()
    assert settings.config_file is None and settings.shop_url is None and settings.absent_sources == ()
    assert settings.source_dir == settings.home / "world" and not settings.source_dir_configured
    assert settings.esp_provider == "sandbox"


@pytest.mark.parametrize(
    ("text", "setting", "reason"),
    [
        (
            '[esp]\nprovider = "nonsense"\n',
            "ESP_PROVIDER (esp.provider in sendwise.toml)",
            "not one of sandbox",
        ),
        ('[sources]\nabsent = ["shop", "erp"]\n', "SENDWISE_ABSENT_SOURCES", "'erp' is not one of"),
        ("[quality]\nmax_shrink = 3\n", "SENDWISE_QUALITY_MAX_SHRINK", "less than or equal to 1"),
        ('[sources]\nshop_ur = "x"\n', "sources.shop_ur in", "unknown key"),
        ("[sources\n", "sendwise.toml", "cannot read it as TOML"),
    ],
)
def test_a_bad_file_value_names_the_key(clean_env: Path, text: str, setting: str, reason: str):
    (clean_env / "sendwise.toml").write_text(text)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    assert setting in raised.value.setting and reason in raised.value.reason, str(raised.value)


def test_a_bad_setting_is_one_line_and_exit_2_and_debug_shows_the_traceback(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2025-13-01")
    assert cli_main(["check-sources"]) == 2
    err = capsys.readouterr().err
    assert err == "sendwise: SENDWISE_EVENTS_START: '2025-13-01' is not a YYYY-MM-DD date\n"
    with pytest.raises(SettingsError):
        cli_main(["--debug", "check-sources"])


def test_sendwise_config_names_the_file_and_a_missing_one_is_an_error(clean_env: Path, monkeypatch):
    (clean_env / "mine.toml").write_text('[esp]\nprovider = "mailchimp"\n')
    monkeypatch.setenv("SENDWISE_CONFIG", str(clean_env / "mine.toml"))
    assert get_settings().esp_provider == "mailchimp"
    monkeypatch.setenv("SENDWISE_CONFIG", str(clean_env / "nope.toml"))
    with pytest.raises(SettingsError, match="SENDWISE_CONFIG: no file"):
        get_settings()


def test_thresholds_from_the_environment_as_pairs_or_json(clean_env: Path, monkeypatch):
    monkeypatch.setenv("SENDWISE_QUALITY_THRESHOLDS", "raw_shop_customers.email_null_share=0.1")
    assert get_settings().quality_thresholds == {"raw_shop_customers.email_null_share": 0.1}
    monkeypatch.setenv("SENDWISE_QUALITY_THRESHOLDS", '{"dim_customers.x": {"mostly": 0.5}}')
    assert get_settings().quality_thresholds == {"dim_customers.x": {"mostly": 0.5}}
    monkeypatch.setenv("SENDWISE_QUALITY_THRESHOLDS", "no_dot=0.1")
    with pytest.raises(SettingsError, match="SENDWISE_QUALITY_THRESHOLDS"):
        get_settings()


def test_every_blocking_threshold_can_be_overridden():
    suites = load_suites()
    email = next(s for s in suites if s.name == "raw_shop_customers").check("email_null_share")
    assert email.kwargs["mostly"] == 0.95  # the default in expectations/raw_shop_customers.yml
    changed = {s.name: s for s in apply_thresholds(suites, {
        "raw_shop_customers.email_null_share": 0.3,
        "raw_shop_orders.row_count_vs_previous_run": 0.6,
        "raw_web_events.quarantine_share": 0.25,
    })}  # fmt: skip
    assert changed["raw_shop_customers"].check("email_null_share").kwargs["mostly"] == 0.3
    assert changed["raw_shop_orders"].max_shrink == 0.6
    assert changed["raw_web_events"].quarantine_max_share == 0.25
    # every blocking check with a bound takes an override of that bound
    for suite in suites:
        for check in suite.expectations:
            bounds = check_bounds(suite, check)
            if check.blocking and bounds:
                (overridden,) = apply_thresholds((suite,), {f"{suite.name}.{check.check}": dict(bounds)})
                assert check_bounds(overridden, overridden.check(check.check)) == bounds


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope.check": 0.1}, "no suite 'nope'"),
        ({"raw_shop_customers.nope": 0.1}, "has no check 'nope'"),
        ({"raw_shop_customers.email_null_share": 2}, "not between 0 and 1"),
        ({"raw_shop_customers.email_null_share": {"max_value": 1}}, "'max_value' is not a bound"),
    ],
)
def test_a_bad_threshold_names_the_key(overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        apply_thresholds(load_suites(), overrides)
