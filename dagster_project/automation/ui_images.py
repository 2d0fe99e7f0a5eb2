"""Plots that the Dagster UI shows inline, not behind "[Show Markdown]".

Dagster 1.13 has no image metadata type. Its UI renders a Markdown value inline in the asset's metadata
table only when the text is under 1,000 characters, so a plot embedded as a data URI (tens of kB) always
sits behind "[Show Markdown]". The webserver does serve files by URL: `/logs/<key...>/<extension>` sends
any file under the local compute-log folder (`$DAGSTER_HOME/storage`). A plot copied there is a short
Markdown image the UI renders in place, on whatever host and port it runs. On an instance without local
compute logs (ephemeral instances in tests, cloud storage) the data URI stays.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

UI_FOLDER = "sendwise_plots"  # under the compute-log folder: Sendwise's own files only
INLINE_LIMIT = 1000  # the UI shows shorter Markdown values in place


def current_instance() -> dg.DagsterInstance | None:
    """The instance of the asset being materialized (None outside a Dagster step)."""
    try:
        return dg.AssetExecutionContext.get().instance
    except Exception:  # no step running: the plot is embedded instead
        return None


def served_image_url(instance: dg.DagsterInstance | None, key: Sequence[str], png: bytes) -> str | None:
    """Copy the PNG where the webserver serves files from; its UI-relative URL, or None if it cannot."""
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

    manager = getattr(instance, "compute_log_manager", None) if instance is not None else None
    if not isinstance(manager, LocalComputeLogManager):
        return None
    log_key = [UI_FOLDER, *key]
    target = Path(manager.get_captured_local_path(log_key, "png"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    return "/logs/" + "/".join([*log_key, "png"])


def plot_markdown(
    png: bytes, title: str, saved: Path | None, instance: dg.DagsterInstance | None, key: Sequence[str]
) -> str:
    """Markdown showing the plot inline in the UI (a served file when possible, else a data URI), with
    where it was saved."""
    saved_line = f"\n\nSaved at `{saved}`" if saved else ""
    url = served_image_url(instance, key, png)
    if url is not None and len(url) + len(title) + len(saved_line) + 8 < INLINE_LIMIT:
        return f"![{title}]({url}){saved_line}"
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{title}](data:image/png;base64,{encoded}){saved_line}"
