"""`sendwise run` on a hand-written shop alone (no crm/, web/ or esp/ folder) just big enough for the
customer-value models' documented minimums: the chain reaches ml.customer_value with real predictions
and the ESP sandbox's profiles carry them as properties, equal to ml.customer_value's values.

The minimums (ml/config.py): CLV needs 100 customers with a completed order, 30 with a repeat purchase
day and 60 days of history; the propensity model needs 200 customers known at its training date with at
least 20 buyers and 20 non-buyers in each 30-day window. So: 200 customers registered on Jan 1st.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from field_tokens import decrypt
from ingestion_helpers import SHOP_DDL, query
from test_ingestion_own_data_run import own_env  # noqa: F401

from dagster_project.activation.resources import sandbox_state_dir
from dagster_project.activation.sandbox_store import read_state
from dagster_project.cli import main as cli_main
from dagster_project.settings import get_settings
from dagster_project.warehouse import connection

CUSTOMERS = range(1, 201)
CATEGORIES = {1: "home", 2: "garden", 3: "books"}
START = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _orders() -> list[tuple[int, int, str, int, datetime, int]]:
    """(order_id, customer, status, total, ordered_at, product): customer i wants 1 + 7 i % 6 orders, the
    first on day 13 i % 120, then gaps of 3 + (7 g (k + 1) + 11 i) % 2g days around its own g = 12 + 17 i % 70
    (uneven gaps, as a Poisson buyer's), none after day 179; its own base price 15 + 37 i % 90, moved by
    (5 j + i) % 7 - 3 twice. Every 10th customer's last order of several is cancelled. The product is
    i % 3 + 1, or (i + j) % 3 + 1 for odd customers (several categories)."""
    orders = []
    for i in CUSTOMERS:
        gap, base, day = 12 + (17 * i) % 70, 15 + (37 * i) % 90, (13 * i) % 120
        days = []
        for k in range(1 + (7 * i) % 6):
            if day >= 180:
                break
            days.append(day)
            day += 3 + (gap * (k + 1) * 7 + i * 11) % (2 * gap)
        for j, day in enumerate(days):
            status = "cancelled" if i % 10 == 0 and j == len(days) - 1 and j > 0 else "completed"
            product = (i + j) % 3 + 1 if i % 2 else i % 3 + 1
            at = START + timedelta(days=day, hours=i % 5)
            orders.append((1000 * i + j, i, status, base + 2 * ((5 * j + i) % 7 - 3), at, product))
    return orders


ORDERS = _orders()


def _write_shop(url: str) -> None:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        conn.execute(SHOP_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into shop.customers values (%s, %s, null, null, null, true, %s, %s)",
                [
                    (i, f"v{i}@shop.example", "2026-01-01T00:00:00+00", "2026-01-01T00:00:00+00")
                    for i in CUSTOMERS
                ],
            )
            cur.executemany(
                "insert into shop.products values (%s, %s, %s, %s, 10.00, %s, %s)",
                [(p, f"SKU-{p}", name, name, START, START) for p, name in CATEGORIES.items()],
            )
            cur.executemany(
                "insert into shop.orders values (%s, %s, %s, %s, 'USD', %s, %s, %s)",
                [(oid, cid, status, total, at, at, at) for oid, cid, status, total, at, _ in ORDERS],
            )
            cur.executemany(
                "insert into shop.order_items values (%s, %s, %s, 1, %s, %s, %s)",
                [(oid * 10, oid, product, total, at, at) for oid, _, _, total, at, product in ORDERS],
            )


def _expected_history() -> dict[str, tuple[float, float | None]]:
    """By hand, per shop customer id: historic CLV (sum of completed orders) and the average days between
    orders (days from the first to the last purchase day / repeat purchase days; none without a repeat)."""
    totals: dict[str, float] = defaultdict(float)
    days: dict[str, set[date]] = defaultdict(set)
    for _, cid, status, total, at, _ in ORDERS:
        if status == "completed":
            totals[str(cid)] += total
            days[str(cid)].add(at.date())
    expected = {}
    for cid, total in totals.items():
        repeats = len(days[cid]) - 1
        span = (max(days[cid]) - min(days[cid])).days
        expected[cid] = (total, round(span / repeats, 1) if repeats else None)
    return expected


@pytest.mark.slow
def test_shop_only_run_predicts_customer_value_and_pushes_it(
    own_env: Path,  # noqa: F811
    warehouse_url: str,
    shop_url: str,
    capsys,
):
    _write_shop(shop_url)
    assert cli_main(["run"]) == 0, capsys.readouterr().err[-3000:]

    columns = [
        "historic_clv",
        "p_alive",
        "predicted_clv",
        "churn_risk",
        "churn_risk_band",
        "expected_next_order_at",
        "avg_days_between_orders",
        "purchase_propensity_30d",
        "top_categories",
    ]
    rows = query(
        warehouse_url,
        f"select d.shop_customer_id::text, d.email_encrypted, {', '.join('v.' + c for c in columns)} "
        "from ml.customer_value v join marts.dim_customers d using (customer_key)",
    )
    values = {
        shop_id: (decrypt(email), dict(zip(columns, rest, strict=True))) for shop_id, email, *rest in rows
    }
    assert len(values) == len(CUSTOMERS)
    # every customer has a completed order here, so every one is scored by every model
    for column in ("p_alive", "predicted_clv", "churn_risk", "churn_risk_band", "purchase_propensity_30d"):
        assert all(v[column] is not None for _, v in values.values()), column
    assert any(v["top_categories"] for _, v in values.values())
    assert any(v["expected_next_order_at"] for _, v in values.values())
    for shop_id, (historic, average) in _expected_history().items():
        assert values[shop_id][1]["historic_clv"] == pytest.approx(historic), shop_id
        got = values[shop_id][1]["avg_days_between_orders"]
        assert (got if got is None else round(got, 1)) == average, shop_id
    (status,) = query(
        warehouse_url,
        "select metrics->'clv'->>'status' from ml.model_runs where model = 'customer_value'",
    )[0]
    assert status == "ok"

    state = read_state(sandbox_state_dir(get_settings()))
    profiles = {(p.get("email") or "").lower(): p["properties"] for p in state["profiles"].values()}
    assert len(profiles) == len(CUSTOMERS)
    for email, v in values.values():
        pushed = profiles[email]
        assert pushed["sendwise_predicted_clv"] == pytest.approx(v["predicted_clv"], abs=0.005)
        assert pushed["sendwise_historic_clv"] == pytest.approx(v["historic_clv"], abs=0.005)
        assert pushed["sendwise_p_alive"] == pytest.approx(v["p_alive"], abs=0.0005)
        assert pushed["sendwise_churn_risk"] == pytest.approx(v["churn_risk"], abs=0.0005)
        assert pushed["sendwise_churn_risk_band"] == v["churn_risk_band"]
        assert pushed["sendwise_purchase_propensity_30d"] == pytest.approx(
            v["purchase_propensity_30d"], abs=0.0005
        )
        next_order = v["expected_next_order_at"]
        if next_order is None:
            assert "sendwise_expected_next_order_date" not in pushed
        else:
            assert (
                pushed["sendwise_expected_next_order_date"] == next_order.astimezone(UTC).date().isoformat()
            )
        top = v["top_categories"].split(",") if v["top_categories"] else []
        if top:
            assert pushed["sendwise_top_categories"] == top
        else:
            assert "sendwise_top_categories" not in pushed
        # the purchased_<category> segments are the affinity's top categories, not every category bought
        segments = pushed["sendwise_behavioural_segments"]
        assert [s for s in segments if s.startswith("purchased_")] == [f"purchased_{c}" for c in top]
