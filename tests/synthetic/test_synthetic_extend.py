"""Adding a day to a world adds only that day's files and newer shop rows; mismatches are refused."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import pytest
from synthetic_helpers import SHOP_TABLES, START, file_digests, make_world, new_database, shop_dump

from dagster_project import cli
from dagster_project.synthetic import world as world_module
from dagster_project.synthetic.world import WorldMismatchError


def test_adding_a_day_adds_only_that_day(pg_server, tmp_path):
    shop_url = new_database(pg_server)
    out = tmp_path / "world"
    make_world(out, shop_url, days=5)
    before_files, before_rows = file_digests(out), shop_dump(shop_url)
    new_day = START + dt.timedelta(days=5)

    meta = make_world(out, shop_url, days=1, start=new_day)

    after_files, after_rows = file_digests(out), shop_dump(shop_url)
    added = sorted(set(after_files) - set(before_files))
    day = new_day.isoformat()
    assert [name for name in added if not name.startswith(f"crm/contacts/{day}/")] == [
        f"esp/events/{day}.jsonl",
        f"web/events/{day}.jsonl",
    ]
    assert any(name.startswith(f"crm/contacts/{day}/page-") for name in added)
    changed = {name for name in before_files if before_files[name] != after_files[name]}
    assert changed == {"ground_truth/people.csv", "ground_truth/world.json"}
    assert meta["end"] == day and meta["days"] == 6

    day_start = dt.datetime.combine(new_day, dt.time(), dt.UTC)
    for table, key_name in SHOP_TABLES.items():
        old = {row[0]: row for row in before_rows[table]}
        new_or_changed = [row for row in after_rows[table] if old.get(row[0]) != row]
        assert len(after_rows[table]) >= len(old)
        for row in new_or_changed:
            updated_at = row[-1]
            assert day_start <= updated_at < day_start + dt.timedelta(days=1), (table, key_name, row)
        if table in ("orders", "order_items"):
            assert new_or_changed, f"no new {table} on the added day"
    with (out / "ground_truth" / "world.json").open() as handle:
        assert json.load(handle)["rows"]["shop_orders"] == len(after_rows["orders"])


def test_a_world_refuses_days_that_do_not_follow_it(pg_server, tmp_path):
    shop_url = new_database(pg_server)
    out = tmp_path / "world"
    make_world(out, shop_url, days=2)
    digests = file_digests(out)
    with pytest.raises(WorldMismatchError, match="--start 2026-03-04"):
        make_world(out, shop_url, days=1, start=START + dt.timedelta(days=5))
    with pytest.raises(WorldMismatchError):
        make_world(out, shop_url, days=1, start=START + dt.timedelta(days=2), seed=99)
    make_world(out, shop_url, days=2)  # the same request again: nothing to do
    assert file_digests(out) == digests
    other_shop = new_database(pg_server)
    with pytest.raises(WorldMismatchError, match="shop database"):
        make_world(out, other_shop, days=1, start=START + dt.timedelta(days=2))


def test_cli_generates_and_can_inject_malformed_lines(pg_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHOP_URL", new_database(pg_server))
    out = tmp_path / "world"
    args = [
        "generate",
        "--customers",
        "300",
        "--days",
        "2",
        "--start",
        "2026-01-05",
        "--out",
        str(out),
        "--malformed-rate",
        "0.02",
        "--seed",
        "3",
    ]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "day 2/2 2026-01-06" in captured.err and "2026-01-05 .. 2026-01-06" in captured.out
    bad = 0
    for path in (out / "web" / "events").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                assert isinstance(orjson.loads(line), dict)
            except (orjson.JSONDecodeError, AssertionError):
                bad += 1
    assert bad > 0
    assert cli.main([*args[:-2], "--seed", "4"]) == 2
    assert "already holds a world" in capsys.readouterr().err


def test_a_failed_extension_leaves_the_world_as_it_was(pg_server, tmp_path, monkeypatch):
    shop_url, whole_url = new_database(pg_server), new_database(pg_server)
    out = tmp_path / "world"
    make_world(out, shop_url, days=3)
    files, rows = file_digests(out), shop_dump(shop_url)
    state = (out / ".generator" / "state.npz").read_bytes()
    pending = {p: p.read_bytes() for p in (out / ".generator" / "pending").rglob("*.tsv")}

    real_crm_day = world_module.crm.crm_day

    def crash_on_the_second_day(seed, population, state, day, folder):
        if day.index == 4:
            raise RuntimeError("disk full")
        return real_crm_day(seed, population, state, day, folder)

    monkeypatch.setattr(world_module.crm, "crm_day", crash_on_the_second_day)
    with pytest.raises(RuntimeError, match="disk full"):
        make_world(out, shop_url, days=2, start=START + dt.timedelta(days=3))
    assert file_digests(out) == files
    assert shop_dump(shop_url) == rows
    assert (out / ".generator" / "state.npz").read_bytes() == state
    assert {p: p.read_bytes() for p in (out / ".generator" / "pending").rglob("*.tsv")} == pending

    monkeypatch.setattr(world_module.crm, "crm_day", real_crm_day)
    make_world(out, shop_url, days=2, start=START + dt.timedelta(days=3))
    make_world(tmp_path / "whole", whole_url, days=5)
    assert file_digests(out) == file_digests(tmp_path / "whole")
    assert shop_dump(shop_url) == shop_dump(whole_url)
