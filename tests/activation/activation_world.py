"""A small synthetic marts + ML world for the activation tests (tables created as contracts.md describes)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import field_tokens
import psycopg
import pytest
from field_tokens import decrypt

from dagster_project.activation.client import ApiSession
from dagster_project.activation.klaviyo import KlaviyoClient, klaviyo_headers
from dagster_project.activation.sandbox import Sandbox
from dagster_project.privacy import keys
from dagster_project.privacy.field_crypto import load_cipher
from dagster_project.privacy.normalize import normalize_email
from dagster_project.settings import get_settings
from dagster_project.warehouse.connection import libpq_url

SEGMENTS = ["loyal champions", "at risk", "new browsers", "bargain hunters"]
AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)

TABLES = """
create schema if not exists marts;
create table marts.dim_customers (
    customer_key text primary key, email text, email_encrypted text, first_name text, last_name text,
    phone text, phone_encrypted text, timezone text,
    registered_at timestamptz, last_activity_at timestamptz, subscription_status text,
    is_email_valid boolean, is_contactable boolean, source_systems text, data_quality_level text,
    esp_profile_id text, shop_customer_id bigint, crm_contact_id text, lifetime_value numeric
);
create table marts.fct_customer_features (
    customer_key text primary key, recency_days integer, frequency integer, monetary numeric,
    engagement_score double precision, behavioural_segments text, lifetime_value numeric
);
create table ml.customer_segments (
    customer_key text, segment_id integer, segment_name text, distance double precision,
    confidence double precision, model_version text
);
create table ml.send_time_predictions (
    customer_key text, best_hour_of_week integer, local_hour integer, local_weekday integer, timezone text,
    next_send_at_utc timestamptz, source_level text, confidence double precision, model_version text
);
create table marts.fct_orders (
    order_id bigint primary key, customer_key text, status text, order_total numeric(12,2),
    ordered_at timestamptz
);
"""


@dataclass
class World:
    conn: psycopg.Connection
    customers: int
    not_contactable: set[str]

    def contactable_emails(self) -> set[str]:
        rows = self.conn.execute(
            "select email_encrypted from marts.dim_customers where is_contactable and is_email_valid "
            "and subscription_status not in ('unsubscribed', 'bounced', 'complained')"
        ).fetchall()
        return {decrypt(r[0]).lower() for r in rows}

    def token(self, email: str) -> str:
        """What dim_customers.email holds for this email (its token)."""
        return keys.load(self.conn).digest(normalize_email(email))

    def email_of(self, customer_key: str) -> str:
        """A customer's email, decrypted from dim_customers.email_encrypted."""
        row = self.conn.execute(
            "select email_encrypted from marts.dim_customers where customer_key = %s", (customer_key,)
        ).fetchone()
        return decrypt(row[0])

    def set_email(self, customer_key: str, email: str) -> None:
        """Give a customer another email, stored as the loaders store one."""
        self.conn.execute(
            "update marts.dim_customers set email = %s, email_encrypted = %s where customer_key = %s",
            (self.token(email), load_cipher().encrypt(email), customer_key),
        )

    def set_status(self, customer_keys: list[str], status: str) -> None:
        self.conn.execute(
            "update marts.dim_customers set subscription_status = %s, is_contactable = false "
            "where customer_key = any(%s)",
            (status, customer_keys),
        )
        self.conn.commit()


def build_world(url: str, customers: int = 300, seed: int = 7) -> World:
    """`customers` people; about 12% not contactable (unsubscribed, bounced, complained, test, invalid)."""
    rng = random.Random(seed)
    hash_key, cipher = field_tokens.hash_key(url), load_cipher()
    conn = psycopg.connect(libpq_url(url))
    conn.execute(TABLES)
    blocked: set[str] = set()
    dims, features, segments, send_times = [], [], [], []
    for i in range(customers):
        key = f"cust-{i:06d}"
        status, valid, contactable = "subscribed", True, True
        draw = rng.random()
        if draw < 0.04:
            status, contactable = "unsubscribed", False
        elif draw < 0.07:
            status, contactable = "bounced", False
        elif draw < 0.09:
            status, contactable = "complained", False
        elif draw < 0.11:
            contactable = False  # test account
        elif draw < 0.12:
            valid, contactable = False, False
        elif draw < 0.20:
            status = "never_subscribed"
        if not contactable:
            blocked.add(key)
        email = f"person{i}@example.com" if valid else f"person{i}-at-nowhere"
        ltv = round(rng.uniform(0, 900), 2)
        stored = (hash_key.digest(email), cipher.encrypt(email))  # as the loaders store an email
        dims.append((key, *stored, f"First{i}", f"Last{i}", status, valid, contactable, ltv))
        features.append((key, round(rng.random(), 4), rng.choice(["", "vip", "vip,browser", "lapsed"]), ltv))
        segment_id = rng.randrange(len(SEGMENTS))
        segments.append((key, segment_id, SEGMENTS[segment_id], 1.0, 0.8, "kmeans-v1"))
        hour = rng.randrange(168)
        send_times.append(
            (
                key,
                hour,
                hour % 24,
                hour // 24,
                "Europe/Berlin",
                AS_OF + timedelta(hours=rng.randrange(1, 168)),
                "user",
                0.7,
                "send-time-v1",
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "insert into marts.dim_customers (customer_key, email, email_encrypted, first_name, last_name, "
            "subscription_status, is_email_valid, is_contactable, lifetime_value) "
            "values (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            dims,
        )
        cur.executemany(
            "insert into marts.fct_customer_features (customer_key, engagement_score, behavioural_segments, "
            "lifetime_value) values (%s,%s,%s,%s)",
            features,
        )
        cur.executemany("insert into ml.customer_segments values (%s,%s,%s,%s,%s,%s)", segments)
        cur.executemany(
            "insert into ml.send_time_predictions values (%s,%s,%s,%s,%s,%s,%s,%s,%s)", send_times
        )
    conn.commit()
    return World(conn, customers, blocked)


@pytest.fixture
def world(warehouse_url: str):
    w = build_world(warehouse_url)
    yield w
    w.conn.close()


@pytest.fixture
def sandbox(tmp_path: Path):
    with Sandbox(tmp_path / "esp_sandbox", get_settings().esp_specs_dir) as running:
        yield running


def make_client(
    sandbox: Sandbox,
    *,
    upsert_batch_size: int = 50,
    removal_batch_size: int = 20,
    timeout: float = 5.0,
    max_attempts: int = 4,
    on_request=None,
    client_class: type[KlaviyoClient] = KlaviyoClient,
) -> KlaviyoClient:
    session = ApiSession(
        sandbox.url,
        klaviyo_headers("test-key"),
        rate_per_second=1000,
        burst=1000,
        max_attempts=max_attempts,
        backoff_base=0.01,
        timeout=timeout,
        on_request=on_request,
    )
    return client_class(
        session,
        upsert_batch_size=upsert_batch_size,
        removal_batch_size=removal_batch_size,
        poll_interval=0.005,
    )


def list_emails(sandbox: Sandbox, list_id: str) -> list[str]:
    store = sandbox.store
    return [store.profiles[pid]["email"] for pid in store.lists.get(list_id, {})]


def write_two_customer_values(conn: psycopg.Connection) -> tuple[str, str]:
    """ml.customer_value for the first two contactable customers: one with every prediction (values
    whose rounding and formats the ESP tests check), one with only a propensity. Returns their keys."""
    valued, unvalued = (
        row[0]
        for row in conn.execute(
            "select customer_key from marts.dim_customers where is_contactable order by 1 limit 2"
        ).fetchall()
    )
    conn.execute(
        "create table ml.customer_value (customer_key text primary key, historic_clv float8, p_alive float8, "
        "predicted_clv float8, churn_risk float8, churn_risk_band text, expected_next_order_at timestamptz, "
        "avg_days_between_orders float8, purchase_propensity_30d float8, top_categories text)"
    )
    conn.execute(
        "insert into ml.customer_value values "
        "(%s, 120.5, 0.8123, 310.456, 0.4567, 'Medium', '2026-12-24T00:00:00Z', 33.333, 0.21, "
        "'books,garden'),"
        "(%s, 0, null, null, null, null, null, null, 0.05, null)",
        (valued, unvalued),
    )
    conn.commit()
    return valued, unvalued
