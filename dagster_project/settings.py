"""Every setting Sendwise reads, in one place: environment variables over an optional project file.

Read at run time through `get_settings()`, never at import time, so that tests and the CLI can
change the environment before anything runs. The project file is `SENDWISE_CONFIG` or, when that is
unset, `sendwise.toml` in the working directory (sections and keys: `FILE_KEYS`; an example is in the
README); an environment variable always wins over the file. A bad value raises `SettingsError`,
which names the setting (the variable and the file key) and what is expected.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

WAREHOUSE_DATABASE = "sendwise"
SHOP_DATABASE = "sendwise_shop"
CONFIG_ENV = "SENDWISE_CONFIG"
CONFIG_FILE = "sendwise.toml"
ESP_PROVIDERS = ("sandbox", "klaviyo", "mailchimp")
ESP_EVENTS_SOURCES = ("files", "api")
SOURCES = ("shop", "crm", "web", "esp")

# project-file key ("section.key" or "key") -> environment variable of the same setting
FILE_KEYS: dict[str, str] = {
    "home": "SENDWISE_HOME",
    "warehouse_url": "WAREHOUSE_URL",
    "sources.shop_url": "SHOP_URL",
    "sources.source_dir": "SENDWISE_SOURCE_DIR",
    "sources.absent": "SENDWISE_ABSENT_SOURCES",
    "sources.events_start": "SENDWISE_EVENTS_START",
    "quality.max_shrink": "SENDWISE_QUALITY_MAX_SHRINK",
    "quality.max_quarantine_share": "SENDWISE_QUALITY_MAX_QUARANTINE_SHARE",
    "quality.freshness_reference": "SENDWISE_FRESHNESS_REFERENCE",
    "quality.thresholds": "SENDWISE_QUALITY_THRESHOLDS",
    "esp.provider": "ESP_PROVIDER",
    "esp.api_key": "ESP_API_KEY",
    "esp.list_id": "ESP_LIST_ID",
    "esp.base_url": "ESP_BASE_URL",
    "esp.specs_dir": "ESP_SPECS_DIR",
    "esp.events_source": "SENDWISE_ESP_EVENTS_SOURCE",
    "alerts.webhook_url": "SENDWISE_ALERT_WEBHOOK_URL",
}
_PATH_KEYS = {"home", "sources.source_dir", "esp.specs_dir"}


class SettingsError(ValueError):
    """A setting with a value Sendwise cannot use; `setting` names it (variable and file key)."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_ignore_empty=True, case_sensitive=True)

    home: Path = Field(default=PROJECT_ROOT / ".sendwise", validation_alias="SENDWISE_HOME")
    """Where Sendwise keeps its local state: embedded Postgres, world files, models, reports."""
    warehouse_url: str | None = Field(default=None, validation_alias="WAREHOUSE_URL")
    """A Postgres URL; when unset, the embedded warehouse under `home/pg` is used."""
    source_dir: Path = Field(default=Path(), validation_alias="SENDWISE_SOURCE_DIR")
    """Folder holding the file sources (CRM exports, web and ESP event files); default `home/world`."""
    source_dir_configured: bool = Field(default=False, validation_alias="_source_dir_configured")
    """True when SENDWISE_SOURCE_DIR (or sources.source_dir) was given, False for the default folder."""
    shop_url: str | None = Field(default=None, validation_alias="SHOP_URL")
    """SQLAlchemy URL of the shop's OLTP database; unset means the embedded `sendwise_shop`."""
    absent_sources: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="SENDWISE_ABSENT_SOURCES"
    )
    """Sources the user does not have (of shop, crm, web, esp): their assets load nothing."""
    esp_provider: str = Field(default="sandbox", validation_alias="ESP_PROVIDER")
    esp_api_key: str | None = Field(default=None, repr=False, validation_alias="ESP_API_KEY")
    esp_list_id: str | None = Field(default=None, validation_alias="ESP_LIST_ID")
    esp_base_url: str | None = Field(default=None, validation_alias="ESP_BASE_URL")
    esp_specs_dir: Path = Field(default=PROJECT_ROOT.parent / "shared" / "esp-specs",
                                validation_alias="ESP_SPECS_DIR")  # fmt: skip
    """Read-only OpenAPI specs of the ESPs (never copied into the repo); `ESP_SPECS_DIR` overrides."""
    events_start: str | None = Field(default=None, validation_alias="SENDWISE_EVENTS_START")
    """First day (YYYY-MM-DD) of the daily partitions of the web and ESP event assets; unset, the
    earliest event file date in the source folder (see ingestion/partitions.py)."""
    quality_max_shrink: float | None = Field(default=None, ge=0, le=1,
                                             validation_alias="SENDWISE_QUALITY_MAX_SHRINK")  # fmt: skip
    """Data quality: overrides every suite's allowed row-count shrink vs the previous run (0..1)."""
    quality_max_quarantine_share: float | None = Field(
        default=None, ge=0, le=1, validation_alias="SENDWISE_QUALITY_MAX_QUARANTINE_SHARE"
    )
    """Data quality: overrides every suite's allowed share of quarantined rows per stream (0..1)."""
    quality_thresholds: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, validation_alias="SENDWISE_QUALITY_THRESHOLDS"
    )
    """Data quality: `"<suite>.<check>"` -> a bound (or a mapping of bounds); see quality/suites.py."""
    freshness_reference: str = Field(default="data", validation_alias="SENDWISE_FRESHNESS_REFERENCE")
    """Freshness checks measure against: `data` (newest event across feeds), `now`, or an ISO time."""
    esp_events_source: str = Field(default="files", validation_alias="SENDWISE_ESP_EVENTS_SOURCE")
    """Where ESP engagement comes from: `files` (esp/events/*.jsonl) or `api` (pulled from the ESP first)."""
    alert_webhook_url: str | None = Field(default=None, validation_alias="SENDWISE_ALERT_WEBHOOK_URL")
    """Where run-failure and stale-source alerts are POSTed as JSON (`{"text": ...}`); unset: no alerts."""
    config_file: Path | None = Field(default=None, validation_alias="_config_file")
    """The project file these settings were read from, if any."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings  # the environment overrides the project file (init)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            home = Path(data.get("SENDWISE_HOME") or PROJECT_ROOT / ".sendwise").resolve()
            data["SENDWISE_HOME"] = home
            data["_source_dir_configured"] = bool(data.get("SENDWISE_SOURCE_DIR"))
            data["SENDWISE_SOURCE_DIR"] = Path(data.get("SENDWISE_SOURCE_DIR") or home / "world").resolve()
        return data

    @field_validator("esp_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        return _one_of(value, ESP_PROVIDERS)

    @field_validator("esp_events_source")
    @classmethod
    def _events_source(cls, value: str) -> str:
        return _one_of(value, ESP_EVENTS_SOURCES)

    @field_validator("events_start")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a YYYY-MM-DD date") from None
        return value

    @field_validator("freshness_reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value not in ("data", "now"):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r}: expected data, now or an ISO-8601 time") from None
        return value

    @field_validator("absent_sources", mode="before")
    @classmethod
    def _absent(cls, value: Any) -> tuple[str, ...]:
        names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
        for name in names:
            _one_of(name, SOURCES)
        return tuple(n for n in names if n)

    @field_validator("quality_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:  # suite.check=bound,suite.check=bound
                pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
                if any(len(p) != 2 for p in pairs):
                    raise ValueError("expected suite.check=bound pairs separated by commas, or a JSON object")
                value = {k.strip(): float(v) for k, v in pairs}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of suite.check to a bound")
        for key in value:
            if key.count(".") != 1:
                raise ValueError(f"key {key!r}: expected <suite>.<check>")
        return value

    def source_absent(self, source: str) -> bool:
        """Declared absent (settings); folder sources missing on disk are decided by the ingestion."""
        return source in self.absent_sources

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def ground_truth_dir(self) -> Path:
        return self.source_dir / "ground_truth"


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return value


def config_path() -> Path | None:
    """The project file in use: SENDWISE_CONFIG, else ./sendwise.toml when it exists."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise SettingsError(CONFIG_ENV, f"no file {path}; create it or unset {CONFIG_ENV}")
        return path
    default = Path.cwd() / CONFIG_FILE
    return default.resolve() if default.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's settings keyed by environment variable (relative paths are relative to the file)."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(str(path), f"cannot read it as TOML ({error})") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key in {k.split(".")[0] for k in FILE_KEYS if "." in k}:
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    values: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in FILE_KEYS:
            known = ", ".join(sorted(FILE_KEYS))
            raise SettingsError(f"{key} in {path}", f"unknown key; known keys: {known}")
        if key in _PATH_KEYS and isinstance(value, str):
            value = str((path.parent / Path(value).expanduser()).resolve())
        values[FILE_KEYS[key]] = value
    return values


def get_settings() -> Settings:
    path = config_path()
    values = read_config_file(path) if path else {}
    try:
        return Settings(**values, _config_file=path)
    except ValidationError as error:
        raise _settings_error(error, path) from None


def _settings_error(error: ValidationError, path: Path | None) -> SettingsError:
    first = error.errors()[0]
    variable = str(first["loc"][0]) if first["loc"] else "settings"
    file_key = next((k for k, v in FILE_KEYS.items() if v == variable), None)
    name = f"{variable} ({file_key} in {path.name})" if path and file_key else variable
    reason = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    if first["type"] != "value_error" and isinstance(value, str | int | float):
        reason = f"{value!r}: {reason}"
    return SettingsError(name, reason)
