"""Nothing of the user's is destroyed: demo, --regenerate and generate write only to what Sendwise marked.

A foreign shop database (a `shop` schema Sendwise did not create, with a sentinel table) and a foreign
source folder (with a sentinel file) go through every command that writes; each refuses with one
line naming the setting, and both sentinels survive. (`sendwise run`, which only reads them, is run
over a user's shop with a sentinel in tests/test_run_own_data.py.)
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dagster_project.cli import main as cli_main
from dagster_project.synthetic import ownership
from dagster_project.warehouse import connection

TINY = ["--customers", "5", "--days", "1", "--seed", "3"]


def _foreign_shop(url: str) -> None:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        conn.execute("create schema shop")
        conn.execute("create table shop.customers (customer_id bigint primary key, email text)")
        conn.execute("insert into shop.customers values (1, 'real@customer.example')")
        conn.execute("create table shop.sentinel (note text)")
        conn.execute("insert into shop.sentinel values ('the user''s own table')")


def _shop_state(url: str) -> tuple:
    with psycopg.connect(connection.libpq_url(url)) as conn:
        return (
            conn.execute("select note from shop.sentinel").fetchall(),
            conn.execute("select * from shop.customers").fetchall(),
            conn.execute("select obj_description('shop'::regnamespace, 'pg_namespace')").fetchone()[0],
        )


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def foreign(warehouse_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _foreign_shop(shop_url)
    folder = tmp_path / "exports"
    (folder / "crm").mkdir(parents=True)
    (folder / "sentinel.txt").write_text("the user's own file\n")
    (folder / "crm" / "notes.txt").write_text("keep me\n")
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(folder))
    return shop_url, folder


def _refused(argv: list[str], capsys, setting: str) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and setting in err[0], err
    return err[0]


def test_every_writing_command_refuses_the_users_shop_and_folder(foreign, capsys, monkeypatch, tmp_path):
    shop_url, folder = foreign
    shop_before, folder_before = _shop_state(shop_url), _folder_state(folder)

    line = _refused(["demo", *TINY], capsys, "SENDWISE_SOURCE_DIR")
    assert "sendwise run" in line
    _refused(["demo", "--regenerate", *TINY], capsys, "SENDWISE_SOURCE_DIR")
    assert "refusing" in _refused(["generate", *TINY, "--out", str(folder)], capsys, str(folder))
    _refused(["generate", *TINY, "--out", str(folder), "--overwrite"], capsys, str(folder))

    # a Sendwise folder of its own, but the user's shop: refused on the shop, nothing written anywhere
    monkeypatch.delenv("SENDWISE_SOURCE_DIR")
    _refused(["demo", *TINY], capsys, "SHOP_URL")
    _refused(["demo", "--regenerate", *TINY], capsys, "SHOP_URL")
    new_folder = tmp_path / "new-world"
    assert "schema `shop` that Sendwise did not create" in _refused(
        ["generate", *TINY, "--out", str(new_folder), "--overwrite"], capsys, "shop database"
    )
    assert not new_folder.exists()

    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(folder))
    cli_main(["check-sources"])  # reads only (the user's shop breaks the contract: that is reported)
    assert "shop" in capsys.readouterr().out

    assert _shop_state(shop_url) == shop_before
    assert _folder_state(folder) == folder_before


def test_demo_refuses_a_source_dir_that_does_not_exist(warehouse_url, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(missing))
    line = _refused(["demo", *TINY], capsys, "SENDWISE_SOURCE_DIR")
    assert "does not exist" in line
    assert not missing.exists()


def test_generate_marks_what_it_creates_and_may_replace_only_that(
    pg_server, fresh_database, tmp_path, capsys
):
    shop_url, out = fresh_database("shop"), tmp_path / "world"
    argv = ["generate", *TINY, "--start", "2026-03-02", "--out", str(out), "--shop-url", shop_url, "--quiet"]
    assert cli_main(argv) == 0
    assert (out / ownership.FOLDER_MARKER).is_file()
    with psycopg.connect(connection.libpq_url(shop_url)) as conn:
        assert ownership.shop_is_ours(conn)
    assert cli_main([*argv, "--seed", "4", "--overwrite"]) == 0  # its own world: replaced
    assert '"seed": 4' in (out / "ground_truth" / "world.json").read_text()
