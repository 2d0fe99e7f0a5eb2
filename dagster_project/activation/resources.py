"""The "esp" resource: an ESP client chosen by settings (sandbox | klaviyo | mailchimp).

The sandbox provider starts the local ESP sandbox (a separate process) when it is not already running.
API keys come from the environment (ESP_API_KEY) and are never logged or shown in metadata.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import httpx

from dagster_project.activation.client import ApiSession, EspClient, SentRequest
from dagster_project.settings import Settings, get_settings

DEFAULT_SANDBOX_PORT = 8765
SANDBOX_API_KEY = "sandbox-key"
SANDBOX_LIST_ID = "sendwise"


@dataclass(frozen=True)
class EspTarget:
    provider: str
    base_url: str
    list_id: str

    @property
    def destination(self) -> str:
        """Key of the sync state: provider + list (a new list starts from an empty state)."""
        return f"{self.provider}:{self.list_id}"


def sandbox_state_dir(settings: Settings) -> Path:
    return settings.home / "esp_sandbox"


def sandbox_health(base_url: str) -> dict | None:
    try:
        response = httpx.get(f"{base_url}/__sandbox/health", timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def sandbox_is_up(base_url: str) -> bool:
    return sandbox_health(base_url) is not None


def _serves(base_url: str, state_dir: Path) -> bool:
    """Whether the sandbox at base_url is the one keeping its state in state_dir (not another home's)."""
    health = sandbox_health(base_url)
    return bool(health) and health.get("state_dir") == str(state_dir.resolve())


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SANDBOX_IDLE_EXIT_SECONDS = 900


def sandbox_command(
    port: int, state_dir: Path, specs_dir: Path | None, idle_exit: float = SANDBOX_IDLE_EXIT_SECONDS
) -> list[str]:
    """The command line that runs the sandbox server (validating against specs_dir when it exists);
    it stops by itself after `idle_exit` seconds without a request (the next sync starts it again)."""
    command = [sys.executable, "-m", "dagster_project.activation.sandbox", "--port", str(port)]
    command += ["--state-dir", str(state_dir), "--idle-exit", str(idle_exit)]
    if specs_dir is not None and specs_dir.exists():
        command += ["--specs-dir", str(specs_dir)]
    return command


def ensure_sandbox(settings: Settings, base_url: str | None = None, wait_seconds: float = 15.0) -> str:
    """The URL of this home's sandbox, started in the background when it is not running.

    With `ESP_BASE_URL` (base_url) that address is used as is. Otherwise the URL the sandbox of this
    SENDWISE_HOME recorded is reused when it still answers; else it starts on 8765, or on a free port
    when 8765 belongs to another home's sandbox (tests and the demo never write into each other's)."""
    state_dir = sandbox_state_dir(settings)
    if base_url:
        if sandbox_is_up(base_url):
            return base_url
        port = httpx.URL(base_url).port or DEFAULT_SANDBOX_PORT
    else:
        recorded = state_dir / "server.url"
        if recorded.exists() and _serves(recorded.read_text().strip(), state_dir):
            return recorded.read_text().strip()
        port = _free_port(DEFAULT_SANDBOX_PORT)
        base_url = f"http://127.0.0.1:{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    command = sandbox_command(port, state_dir, settings.esp_specs_dir)
    log = (state_dir / "server.log").open("ab")
    subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if sandbox_is_up(base_url):
            return base_url
        time.sleep(0.1)
    raise RuntimeError(f"the ESP sandbox did not start on {base_url}; see {state_dir / 'server.log'}")


def resolve_target(settings: Settings) -> EspTarget:
    provider = settings.esp_provider
    if provider == "sandbox":
        base_url = settings.esp_base_url or f"http://127.0.0.1:{DEFAULT_SANDBOX_PORT}"  # until started
        return EspTarget(provider, base_url, settings.esp_list_id or SANDBOX_LIST_ID)
    if provider not in ("klaviyo", "mailchimp"):
        raise ValueError(f"ESP_PROVIDER={provider!r}: expected sandbox, klaviyo or mailchimp")
    if not settings.esp_api_key:
        raise ValueError(f"ESP_PROVIDER={provider} needs ESP_API_KEY")
    if not settings.esp_list_id:
        raise ValueError(f"ESP_PROVIDER={provider} needs ESP_LIST_ID (the list/audience Sendwise manages)")
    if provider == "klaviyo":
        base_url = settings.esp_base_url or "https://a.klaviyo.com"
    else:
        from dagster_project.activation.mailchimp import mailchimp_base_url

        base_url = settings.esp_base_url or mailchimp_base_url(settings.esp_api_key)
    return EspTarget(provider, base_url, settings.esp_list_id)


def build_client(
    settings: Settings | None = None,
    *,
    start_sandbox: bool = True,
    upsert_batch_size: int | None = None,
    removal_batch_size: int | None = None,
    on_request: Callable[[SentRequest], None] | None = None,
    max_attempts: int = 5,
    backoff_base: float = 0.5,
    timeout: float = 60.0,
) -> tuple[EspClient, EspTarget]:
    """The ESP client for the configured provider, and where it points."""
    settings = settings or get_settings()
    target = resolve_target(settings)
    if target.provider in ("sandbox", "klaviyo"):
        from dagster_project.activation.klaviyo import KlaviyoClient, klaviyo_headers

        if target.provider == "sandbox" and start_sandbox:
            target = replace(target, base_url=ensure_sandbox(settings, settings.esp_base_url))
        fast = target.provider == "sandbox"
        session = ApiSession(
            target.base_url,
            klaviyo_headers(settings.esp_api_key or SANDBOX_API_KEY),
            rate_per_second=1000.0 if fast else 2.5,  # Klaviyo bulk import: 10/s burst, 150/min steady
            burst=100 if fast else 10,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            timeout=timeout,
            on_request=on_request,
        )
        client: EspClient = KlaviyoClient(
            session,
            upsert_batch_size=upsert_batch_size or 10_000,
            removal_batch_size=removal_batch_size or 1_000,
            poll_interval=0.02 if fast else 1.0,
        )
        if fast:
            client.name = "sandbox"
        return client, target
    from dagster_project.activation.mailchimp import MailchimpClient, mailchimp_headers

    session = ApiSession(
        target.base_url,
        mailchimp_headers(settings.esp_api_key or ""),
        rate_per_second=10.0,
        burst=10,
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        timeout=timeout,
        on_request=on_request,
    )
    return MailchimpClient(session, target.list_id, upsert_batch_size=upsert_batch_size or 500), target


class EspResource(dg.ConfigurableResource):
    """The ESP Sendwise activates into. Provider, key and list come from settings (env vars)."""

    upsert_batch_size: int | None = None
    removal_batch_size: int | None = None

    def target(self) -> EspTarget:
        return resolve_target(get_settings())

    def client(self) -> tuple[EspClient, EspTarget]:
        """A client for the configured ESP (starting the sandbox if that is the provider)."""
        return build_client(
            upsert_batch_size=self.upsert_batch_size, removal_batch_size=self.removal_batch_size
        )
