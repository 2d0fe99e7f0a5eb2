"""Consent from bounces: a hard bounce marks a person bounced at once; soft bounces only when var
soft_bounce_suppression_streak (7) of them come in a row, with no delivery, open or click in between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dbt_support import create_raw_tables, dbt_build, load_raw, new_database, query
from sendwise_hand_world import _esp, _shop, t

CREATED, UPDATED = t("2026-03-01"), t("2026-03-02")
PEOPLE = {  # name -> the outcomes of their sends, oldest first
    "hank": ["delivered"] + ["soft"] * 7,
    "ivy": ["soft"] * 6 + ["delivered"] + ["soft"] * 3,
    "jay": ["delivered"] + ["soft"] * 6,
    "kim": ["delivered", "hard"],
    "lou": ["soft"] * 6 + ["open"] + ["soft"],  # an open says the mail got through
}


def esp_events() -> list[dict]:
    events = []
    for number, (name, outcomes) in enumerate(PEOPLE.items(), start=1):
        for k, outcome in enumerate(outcomes):
            at = t("2026-03-03") + timedelta(days=k)
            message = f"m-{name}-{k}"
            base = (f"e-{name}-{k}", f"esp-{number}", f"{name}@mail.org", message)
            if outcome in ("delivered", "open"):
                events.append(_esp(base[0] + "-d", "delivered", *base[1:], at))
            if outcome == "open":
                events.append(
                    _esp(base[0] + "-o", "open", *base[1:], at + timedelta(hours=2), ua="Mozilla/5.0")
                )
            if outcome in ("soft", "hard"):
                events.append(_esp(base[0], "bounce", *base[1:], at, bounce=outcome))
    return events


@pytest.fixture(scope="module")
def customers(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    url = new_database(pg_server, "dbt_bounces")
    create_raw_tables(url)
    shop = [
        _shop(400 + n, f"{name}@mail.org", name.title(), "Example", None, True, CREATED, UPDATED)
        for n, name in enumerate(PEOPLE, start=1)
    ]
    load_raw(url, "shop_customers", shop)
    load_raw(url, "esp_events", esp_events())
    dbt_build(
        url,
        tmp_path_factory.mktemp("dbt-bounces"),
        "--select",
        "+dim_customers",
        "--indirect-selection",
        "cautious",
    )
    rows = query(url, "select * from marts.dim_customers")
    yield {row["email"].split("@")[0]: row for row in rows}


def test_seven_soft_bounces_in_a_row_suppress_like_a_hard_bounce(customers):
    status = {
        name: (row["subscription_status"], row["consecutive_soft_bounces"], row["is_contactable"])
        for name, row in customers.items()
    }
    assert status == {
        "hank": ("bounced", 7, False),
        "ivy": ("subscribed", 3, True),  # the delivery broke the streak of six
        "jay": ("subscribed", 6, True),
        "kim": ("bounced", 0, False),
        "lou": ("subscribed", 1, True),
    }
