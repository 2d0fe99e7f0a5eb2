"""`sendwise privacy`: requests recorded as keyed hashes only, files checked line by line, `--now`."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import psycopg
import pytest
from field_tokens import protect_rows

from dagster_project.cli import main as sendwise
from dagster_project.ingestion import loaders
from dagster_project.privacy import keys


def rows(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def expected_hash(identity: str) -> str:
    secret, _ = keys.configured_secret()
    return hmac.new(secret, identity.encode(), hashlib.sha256).hexdigest()


def test_a_request_keeps_only_keyed_hashes_of_normalised_identifiers(warehouse_url: str, capsys):
    code = sendwise(
        ["privacy", "suppress", "--email", " Zoe@Example.ORG", "--phone", "(415) 555-0101"]
        + ["--source-id", "crm_contact_id:crm-7", "--customer-key", "cus_0123456789abcdef"]
    )
    assert code == 0
    output = capsys.readouterr().out
    assert "zoe" not in output.lower() and "recorded pr_" in output
    [(regulation, hashes, status)] = rows(
        warehouse_url, "select regulation, identity_hashes, status from ops.privacy_requests"
    )
    assert (regulation, status) == ("suppress", "pending")
    assert sorted(hashes) == sorted(
        expected_hash(i)
        for i in (
            "email:" + expected_hash("zoe@example.org"),  # emails and phones by their token
            "phone:" + expected_hash("+14155550101"),
            "crm_contact_id:crm-7",
            "customer_key:cus_0123456789abcdef",
        )
    )
    stored = str(rows(warehouse_url, "select * from ops.privacy_requests"))
    # The phone's digits, not "555": hex hashes hold "555" one time in about 14.
    assert "zoe" not in stored.lower() and "crm-7" not in stored and "4155550101" not in stored


def test_a_file_with_a_bad_line_or_too_many_identifiers_is_refused(
    warehouse_url: str, tmp_path: Path, capsys
):
    bad = tmp_path / "people.txt"
    bad.write_text("# to forget\nann@example.org\nphone:12\n")
    assert sendwise(["privacy", "delete", "--file", str(bad)]) == 2
    assert f"{bad}:3: not a phone number" in capsys.readouterr().out
    many = tmp_path / "many.txt"
    many.write_text("".join(f"person{i}@example.org\n" for i in range(5_001)))
    assert sendwise(["privacy", "delete", "--file", str(many)]) == 2
    assert "at most 5000 per request" in capsys.readouterr().out
    assert rows(warehouse_url, "select count(*) from ops.privacy_requests") == [(0,)]


def test_delete_now_removes_raw_rows_and_logs_an_esp_it_cannot_reach(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("ESP_PROVIDER", "klaviyo")  # without ESP_API_KEY: no client can be built
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        people = [
            {"contact_id": "crm-1", "email": " Ann@Example.org", "first_name": "Ann"},
            {"contact_id": "crm-2", "email": "bo@example.org", "first_name": "Bo"},
        ]
        for row in protect_rows(warehouse_url, "crm_contacts", people):  # as the loaders store them
            conn.execute(
                "insert into raw.crm_contacts (contact_id, email, email_encrypted, first_name, updated_at) "
                "values (%s, %s, %s, %s, now())",
                (row["contact_id"], row["email"], row["email_encrypted"], row["first_name"]),
            )
    assert sendwise(["privacy", "delete", "--email", "ann@example.org", "--now"]) == 0
    output = capsys.readouterr().out
    assert "1 rows removed" in output and "not forwarded" in output
    assert rows(warehouse_url, "select contact_id from raw.crm_contacts") == [("crm-2",)]
    assert sendwise(["privacy", "list"]) == 0
    assert "| delete | 1 | done |" in capsys.readouterr().out
