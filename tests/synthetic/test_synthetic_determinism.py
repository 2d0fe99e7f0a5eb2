"""Same seed, same world; another seed, another world; 8 days at once equal 7 days plus 1."""

from __future__ import annotations

import datetime as dt

from synthetic_helpers import START, file_digests, make_world, new_database, shop_dump


def test_same_seed_gives_identical_files_and_rows(pg_server, tmp_path):
    first_db, second_db = new_database(pg_server), new_database(pg_server)
    make_world(tmp_path / "a", first_db)
    make_world(tmp_path / "b", second_db)
    first, second = file_digests(tmp_path / "a"), file_digests(tmp_path / "b")
    assert len(first) > 20
    assert first == second
    assert shop_dump(first_db) == shop_dump(second_db)


def test_another_seed_gives_another_world(pg_server, tmp_path):
    first_db, second_db = new_database(pg_server), new_database(pg_server)
    make_world(tmp_path / "a", first_db, days=2)
    make_world(tmp_path / "b", second_db, days=2, seed=8)
    first, second = file_digests(tmp_path / "a"), file_digests(tmp_path / "b")
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)
    assert shop_dump(first_db)["orders"] != shop_dump(second_db)["orders"]


def test_generating_in_two_runs_equals_one_run(pg_server, tmp_path):
    whole_db, split_db = new_database(pg_server), new_database(pg_server)
    make_world(tmp_path / "whole", whole_db, days=8)
    make_world(tmp_path / "split", split_db, days=7)
    make_world(tmp_path / "split", split_db, days=1, start=START + dt.timedelta(days=7))
    assert file_digests(tmp_path / "whole") == file_digests(tmp_path / "split")
    assert shop_dump(whole_db) == shop_dump(split_db)
