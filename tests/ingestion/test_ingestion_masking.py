"""No raw PII in what the Dagster UI shows: the loads' previews and quarantine samples are masked, so the
instance's event log (DAGSTER_HOME storage) and Sendwise's home hold no email, phone, name or ESP key."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from ingestion_helpers import (
    contact,
    create_shop,
    esp_event,
    materializations,
    materialize_raw,
    web_event,
    write_crm_export,
    write_events,
)

from dagster_project.privacy.masking import mask_record, mask_sample, mask_text
from dagster_project.warehouse import embedded

DAY = "2025-03-01"
ESP_KEY = "pk_live_Sup3rSecretEspKey42"
SECRETS = [
    "zebulon.quixley@example.org",
    "c1@example.com",
    "c2@example.com",
    "Zebulon",
    "Quixley",
    "+49 151 5550 1234",
    "10.20.30.40",
    "wanda.web@example.net",
    "broken.quarantined@example.org",
    ESP_KEY,
]


def test_masking_rules():
    assert mask_record(
        {"email": "zebulon@example.org", "first_name": "Zebulon", "phone": "+49 151 5550 1234"}
    ) == {
        "email": "z***@example.org",
        "first_name": "Z.",
        "phone": "***34",
    }
    text = '{"id": "crm-9", "email": "Ann.Lee@mail.org", "firstName": "Ann", "phone": "555 0101", "n": 3}'
    assert json.loads(mask_text(text)) == {
        "id": "crm-9",
        "email": "A***@mail.org",
        "firstName": "***",
        "phone": "***",
        "n": 3,
    }
    assert (
        mask_record({"traits": {"email": "w@x.io", "plan": "pro"}})["traits"]
        == '{"email": "w***@x.io", "plan": "pro"}'
    )
    assert mask_sample([{"value": "+1 415 555 0199"}], column="phone") == [{"value": "***99"}]
    assert mask_record({"customer_key": "cus_1", "lifetime_value": 12.5}) == {
        "customer_key": "cus_1",
        "lifetime_value": 12.5,
    }


def test_one_email_masker_serves_previews_and_activation() -> None:
    from dagster_project.activation.assets import masked
    from dagster_project.privacy.masking import mask_email

    text = "to ümit@bücher.de, 'a@b.test' <x.y@z.org>; postgresql://postgres@/sendwise?host=/tmp/pg"
    expected = "to ü***@bücher.de, 'a***@b.test' <x***@z.org>; postgresql://postgres@/sendwise?host=/tmp/pg"
    assert mask_email(text) == expected  # a non-ASCII local part is masked whole, a socket URL is no address
    assert masked(text) == expected and masked(None) == ""


def test_the_event_log_and_home_hold_no_pii_after_loading(
    warehouse_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_data_dir
):
    source_dir = tmp_path / "world"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source_dir))
    monkeypatch.setenv("SENDWISE_EVENTS_START", DAY)
    monkeypatch.setenv("ESP_API_KEY", ESP_KEY)
    create_shop(shop_url, customers=2)
    crm = [
        contact(
            1,
            email="zebulon.quixley@example.org",
            first_name="Zebulon",
            last_name="Quixley",
            phone="+49 151 5550 1234",
        ),
        {"id": "crm-bad", "email": "broken.quarantined@example.org", "updated_at": "not a time"},
    ]
    write_crm_export(source_dir, "2025-03-01", [crm])
    write_events(
        source_dir,
        DAY,
        web=[
            web_event(
                "w1",
                DAY,
                type="identify",
                traits={"email": "wanda.web@example.net", "firstName": "Zebulon"},
                context={"ip": "10.20.30.40"},
            )
        ],
        esp=[esp_event("e1", DAY, email="c2@example.com", ip="10.20.30.40")],
    )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        results = materialize_raw([DAY], instance=instance)
        metadata = materializations(results)
        assert metadata["raw/crm_contacts"]["rows_quarantined"] == 1  # its sample was shown, masked
        assert "| z***@example.org |" in metadata["raw/crm_contacts"]["preview"]
    home = Path(tmp_path / "home")
    stored = b"".join(p.read_bytes() for p in dagster_home.rglob("*") if p.is_file())
    assert b"z***@example.org" in stored  # the grep reads where the event log is kept
    secrets = list(SECRETS)
    if pg_data_dir is not None:  # nor the warehouse's passwords: the runs' URL held the owner's
        passwords = [embedded.password(pg_data_dir, r) for r in (embedded.OWNER_ROLE, embedded.ANALYST_ROLE)]
        assert all(passwords) and f":{passwords[0]}@" in warehouse_url
        secrets += passwords
    leaks = []
    for folder in (dagster_home, home):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                leaks += [f"{path.relative_to(tmp_path)}: {s}" for s in secrets if s.encode() in data]
    assert leaks == []
