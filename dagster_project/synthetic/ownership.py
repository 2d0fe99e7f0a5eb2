"""What Sendwise may overwrite: only the world folders and shop schemas it created and marked as its own.

A world folder is Sendwise's when it holds the marker file `.sendwise-world` (or, for worlds written
before markers existed, the generator's `ground_truth/world.json` and `.generator/`). A shop database is
Sendwise's when its schema `shop` carries the marker comment, or when it has no `shop` schema at all
(there is nothing to destroy; the generator creates and marks it). Everything else is the user's: the
generator refuses to write there, before it writes anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from dagster_project.privacy.masking import mask_url

FOLDER_MARKER = ".sendwise-world"
FOLDER_MARKER_TEXT = (
    "This folder holds a synthetic world written by `sendwise generate`; Sendwise may replace it.\n"
)
SHOP_MARKER = "sendwise synthetic shop: written by `sendwise generate`, which may replace it"


class NotOursError(RuntimeError):
    """A destructive or writing step pointed at something Sendwise did not create (the message says what)."""


def folder_is_ours(folder: Path) -> bool:
    if (folder / FOLDER_MARKER).is_file():
        return True
    world = folder / "ground_truth" / "world.json"
    if not (world.is_file() and (folder / ".generator").is_dir()):
        return False
    try:
        meta = json.loads(world.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"version", "seed", "layout"} <= set(meta)


def check_folder(folder: Path) -> None:
    """Refuse (NotOursError) when `folder` holds anything that is not Sendwise's."""
    if folder.exists() and not folder.is_dir():
        raise NotOursError(f"{folder} is a file, not a folder: refusing to write a world there")
    if folder.is_dir() and not folder_is_ours(folder) and any(folder.iterdir()):
        raise NotOursError(
            f"{folder} holds files Sendwise did not write (no {FOLDER_MARKER} marker): refusing to write a "
            "synthetic world into it; choose an empty or new folder (--out / SENDWISE_SOURCE_DIR)"
        )


def claim_folder(folder: Path) -> None:
    """Make `folder` the world's (creating it and writing the marker), after `check_folder`."""
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FOLDER_MARKER).write_text(FOLDER_MARKER_TEXT)


def shop_is_ours(conn: psycopg.Connection) -> bool:
    """True when schema `shop` is absent or carries Sendwise's marker comment."""
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'shop'"
    ).fetchone()
    return row is None or row[0] == SHOP_MARKER


def check_shop(conn: psycopg.Connection, shop_url: str) -> None:
    if not shop_is_ours(conn):
        raise NotOursError(
            f"the shop database {mask_url(shop_url)} has a schema `shop` that Sendwise did not create: "
            "refusing to replace it with a synthetic shop; unset SHOP_URL (the embedded shop is used) "
            "or point it at an empty database"
        )


def mark_shop(conn: psycopg.Connection) -> None:
    conn.execute(f"comment on schema shop is '{SHOP_MARKER}'")


def check_world_target(source_dir: Path, shop_url: str | None) -> None:
    """Refuse (NotOursError) before a demo writes a world to `source_dir` and the shop at `shop_url`.

    `shop_url` None means the embedded shop, which is Sendwise's own.
    """
    if source_dir.is_dir() and not folder_is_ours(source_dir) and any(source_dir.iterdir()):
        raise NotOursError(
            f"SENDWISE_SOURCE_DIR: {source_dir} holds data Sendwise did not write; the demo writes a "
            "synthetic world only into its own folder: unset SENDWISE_SOURCE_DIR, or use `sendwise run` "
            "to run on your data"
        )
    if shop_url:
        from dagster_project.warehouse.connection import libpq_url

        with psycopg.connect(libpq_url(shop_url), connect_timeout=5) as conn:
            if not shop_is_ours(conn):
                raise NotOursError(
                    f"SHOP_URL: {mask_url(shop_url)} has a schema `shop` Sendwise did not create; the demo "
                    "writes a synthetic shop only into its own database: unset SHOP_URL, or use "
                    "`sendwise run` to run on your data"
                )
