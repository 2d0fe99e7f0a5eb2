"""A small, clean world for the quality tests, written straight into the warehouse tables.

Raw and ops tables are created with the ingestion's own DDL; marts and ML tables by hand, following
the column contracts. Every feed's newest event is at ANCHOR, so freshness passes by default.
`Corruption`s then break the data in one targeted way each.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from dagster_project.ingestion import loaders
from dagster_project.privacy.keys import sql_keyed_hash
from dagster_project.warehouse import connection

ANCHOR = "2025-03-01 12:00:00+00"
CUSTOMERS = 400


def world_sql(
    customers: int = CUSTOMERS,
    orders: int = 900,
    esp_events: int = 3000,
    web_events: int = 2000,
    hours: int = 720,
) -> str:
    """The clean world's SQL; the defaults make the small test world, bench/quality.py scales it up."""
    return f"""
insert into raw.shop_customers (customer_id, email, first_name, last_name, phone, accepts_marketing,
    created_at, updated_at, _batch_id)
select g, {sql_keyed_hash("'customer' || g || '@example.com'")}, 'First' || g, 'Last' || g,
    {sql_keyed_hash("'+3161234' || lpad(g::text, 4, '0')")},
    g % 3 <> 0, timestamptz '{ANCHOR}' - interval '90 days' + g * interval '1 minute',
    timestamptz '{ANCHOR}' - interval '30 days' + g * interval '1 minute', 'shop_customers-b1'
from generate_series(1, {customers}) g;

insert into raw.shop_orders (order_id, customer_id, status, order_total, currency, ordered_at,
    created_at, updated_at, _batch_id)
select g, 1 + g % {customers}, (array['completed', 'completed', 'cancelled', 'refunded'])[1 + g % 4],
    round((10 + g % 90)::numeric * 1.25, 2), 'EUR',
    timestamptz '{ANCHOR}' - (g % {hours}) * interval '1 hour',
    timestamptz '{ANCHOR}' - (g % {hours}) * interval '1 hour', timestamptz '{ANCHOR}', 'shop_orders-b1'
from generate_series(1, {orders}) g;

insert into raw.esp_events (event_id, event_type, profile_id, email, campaign_id, message_id,
    event_timestamp, user_agent, ip, url, bounce_type, _file_date, _source_file, _batch_id)
select 'ev-' || g, t.event_type, 'esp-' || (1 + g % {customers}),
    {sql_keyed_hash("'customer' || (1 + g % " + str(customers) + ") || '@example.com'")},
    'cmp-' || (g % 6), 'msg-' || (g / 7), ts,
    case when t.event_type = 'open' and g % 10 < 3 then 'Mozilla/5.0'
         when t.event_type in ('open', 'click')
             then 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605'
    end,
    case when t.event_type in ('open', 'click') then '10.0.' || (g % 250) || '.1' end,
    case when t.event_type = 'click' then 'https://shop.example.com/p/' || g end,
    case when t.event_type = 'bounce' then (array['hard', 'soft'])[1 + g % 2] end,
    ts::date, 'esp/events/' || ts::date || '.jsonl', 'esp_events-' || ts::date
from generate_series(1, {esp_events}) g
cross join lateral (select (array['sent', 'delivered', 'open', 'click', 'sent', 'delivered', 'open',
    'bounce', 'unsubscribe', 'spam_complaint'])[1 + g % 10] as event_type,
    timestamptz '{ANCHOR}' - (g % {hours}) * interval '1 hour' as ts) t;

insert into raw.web_events (message_id, type, event, anonymous_id, user_id, event_timestamp, received_at,
    user_agent, page_path, properties, traits, context, _file_date, _source_file, _batch_id)
select 'm-' || g, t.type, case when t.type = 'track' then (array['Product Viewed', 'Product Added',
    'Checkout Started', 'Order Completed', 'Signed In'])[1 + g % 5] end,
    'anon-' || (g % 700), case when g % 2 = 0 then (1 + g % {customers})::text end,
    ts, ts + interval '2 seconds',
    'Mozilla/5.0 (X11; Linux x86_64)', '/p/' || (g % 50), '{{}}'::jsonb, '{{}}'::jsonb, '{{}}'::jsonb,
    ts::date, 'web/events/' || ts::date || '.jsonl', 'web_events-' || ts::date
from generate_series(1, {web_events}) g
cross join lateral (select (array['page', 'page', 'track', 'identify'])[1 + g % 4] as type,
    timestamptz '{ANCHOR}' - (g % {hours}) * interval '1 hour' as ts) t;

insert into ops.load_log (batch_id, stream, partition_key, received, loaded, quarantined, written, status,
    started_at, finished_at)
select s.stream || '-' || d::date, s.stream, case when s.daily then d::date::text end,
    1000, 990, 10, 990, 'success', d, d + interval '1 minute'
from (values ('shop_customers', false), ('shop_orders', false), ('esp_events', true), ('web_events', true))
    s(stream, daily)
cross join generate_series(timestamptz '{ANCHOR}' - interval '2 days', timestamptz '{ANCHOR}',
    interval '1 day') d
where s.daily or d = timestamptz '{ANCHOR}';

insert into ops.quarantine (stream, partition_key, source_location, record, reason, batch_id)
select 'esp_events', '2025-03-01', 'esp/events/2025-03-01.jsonl:' || g, '{{"event_id": null}}',
    'missing event_id', 'esp_events-2025-03-01'
from generate_series(1, 10) g;

create schema if not exists staging;
create table staging.quarantine_shares as
select source_table, staged_rows, quarantined_rows, staged_rows + quarantined_rows as checked_rows,
    quarantined_rows::float8 / (staged_rows + quarantined_rows) as quarantine_share
from (values ('shop_orders', {orders} - 9, 9), ('shop_order_items', {orders} * 2, 0),
    ('esp_events', {esp_events} - 30, 30), ('web_events', {web_events} - 20, 20))
    s(source_table, staged_rows, quarantined_rows);

create schema if not exists intermediate;
create table intermediate.int_calendar__as_of as select timestamptz '{ANCHOR}' as as_of_at;

create schema if not exists marts;
create table marts.dim_customers as
select 'ck-' || g as customer_key, {sql_keyed_hash("'customer' || g || '@example.com'")} as email,
    'First' || g as first_name,
    'Last' || g as last_name, null::text as phone,
    (array['Europe/Amsterdam', 'America/New_York', 'Asia/Tokyo'])[1 + g % 3] as timezone,
    timestamptz '{ANCHOR}' - interval '90 days' as registered_at, timestamptz '{ANCHOR}' as last_activity_at,
    case when g % 5 = 0 then 'unsubscribed' else 'subscribed' end as subscription_status,
    true as is_email_valid, g % 5 <> 0 as is_contactable, 'shop,esp' as source_systems,
    (array['HIGH', 'MEDIUM', 'LOW'])[1 + g % 3] as data_quality_level, 'esp-' || g as esp_profile_id,
    g::text as shop_customer_id, null::text as crm_contact_id, (g % 40) * 12.5::numeric as lifetime_value,
    timestamptz '{ANCHOR}' as _built_at
from generate_series(1, {customers}) g;
create table intermediate.int_customers__features as
select 'ck-' || g as customer_key, timestamptz '{ANCHOR}' as _built_at from generate_series(1, {customers}) g;

create table marts.fct_customer_features as
select 'ck-' || g as customer_key, case when g % 4 = 0 then null else g % 60 end as recency_days,
    g % 5 as frequency, (g % 5) * 30.0 as monetary,
    case when g % 5 = 0 then 0 else 30.0 end as avg_order_value,
    g % 90 as days_since_first_order, (g % 5) / 3.0 as purchase_frequency,
    10 as email_sends_30d, g % 8 as email_unique_opens_30d, g % 3 as email_unique_clicks_30d,
    (g % 8) / 10.0 as email_open_rate_30d, (g % 3) / 10.0 as email_click_rate_30d,
    30 as email_sends_90d, g % 20 as email_unique_opens_90d, g % 6 as email_unique_clicks_90d,
    (g % 20) / 30.0 as email_open_rate_90d, (g % 6) / 30.0 as email_click_rate_90d,
    g % 12 as web_sessions_30d, g % 40 as web_page_views_30d, 95.5 as avg_session_duration_seconds,
    g % 20 as active_days_30d, 90 as days_since_registration, 'shoes,bags' as top_categories,
    (g % 100) / 100.0 as engagement_score, 'loyal' as behavioural_segments,
    (g % 40) * 12.5::numeric as lifetime_value,
    greatest(g % 5 - 1, 0) as repeat_frequency, case when g % 5 > 1 then 30.0 end as repeat_monetary_value,
    case when g % 5 > 0 then (g % 5 - 1) * 7 end as purchase_span_days,
    case when g % 5 > 0 then (g % 5 - 1) * 7 + 5 end as purchase_age_days
from generate_series(1, {customers}) g;

create table ml.customer_segments as
select 'ck-' || g as customer_key, g % 5 as segment_id, 'segment-' || (g % 5) as segment_name,
    (g % 10) / 3.0 as distance, 0.5 + (g % 5) / 10.0 as confidence, 'kmeans-v1' as model_version
from generate_series(1, {customers}) g;

create table ml.send_time_predictions as
select 'ck-' || g as customer_key, (g % 7) * 24 + g % 24 as best_hour_of_week, g % 24 as local_hour,
    g % 7 as local_weekday, 'Europe/Amsterdam' as timezone,
    timestamptz '{ANCHOR}' + (1 + g % 168) * interval '1 hour' as next_send_at_utc,
    (array['user', 'segment', 'timezone', 'global', 'default'])[1 + g % 5] as source_level,
    0.6 as confidence, 'sendtime-v1' as model_version
from generate_series(1, {customers}) g;

create table ml.customer_value as
select 'ck-' || g as customer_key, (g % 40) * 12.5 as historic_clv, (g % 10) / 10.0 as p_alive,
    (g % 10) / 4.0 as expected_purchases_365d, (g % 10) * 8.0 as predicted_clv,
    (g % 10) * 7.5 as predicted_clv_discounted, (g % 10) / 10.0 as churn_risk,
    case when g % 10 < 4 then 'Low' when g % 10 < 7 then 'Medium' else 'High' end as churn_risk_band,
    (g % 7) / 10.0 as purchase_propensity_30d, 'value-v1' as model_version, now() as scored_at
from generate_series(1, {customers}) g;
"""


def build_clean_world(warehouse_url: str) -> None:
    with psycopg.connect(connection.libpq_url(warehouse_url)) as conn:
        loaders.ensure_tables(conn)
        conn.execute(world_sql())


def execute(warehouse_url: str, statement: str) -> None:
    with psycopg.connect(connection.libpq_url(warehouse_url)) as conn:
        conn.execute(statement)


@dataclass(frozen=True)
class Corruption:
    name: str
    statement: str
    expected_failures: dict[str, set[str]]
    """suite -> the checks that must fail (every other check of every suite must pass)."""


CORRUPTIONS = [
    Corruption(
        "duplicate ESP event ids (a partition loaded twice)",
        "insert into raw.esp_events select * from raw.esp_events where _file_date = date '2025-03-01'",
        {"raw_esp_events": {"event_id_unique"}},
    ),
    Corruption(
        "duplicate profile keys",
        "insert into marts.dim_customers "
        "select * from marts.dim_customers where customer_key in ('ck-7', 'ck-8')",
        # dbt's unique test on the key blocks this (one check per rule, no GX twin); the features table
        # now has fewer rows than the profiles, which the warn-level cross check sees.
        {"fct_customer_features": {"one_row_per_profile"}},
    ),
    Corruption(
        "a batch of null emails in the shop customers",
        "update raw.shop_customers set email = null where customer_id <= 60",
        {"raw_shop_customers": {"email_null_share"}},
    ),
    Corruption(
        "a batch of null emails in the profiles",
        "update marts.dim_customers set email = null, is_email_valid = false, is_contactable = false "
        "where customer_key in (select 'ck-' || g from generate_series(1, 80) g)",
        {"dim_customers": {"email_null_share"}},
    ),
    Corruption(
        "negative order totals",
        "update raw.shop_orders set order_total = -order_total where order_id % 10 = 1",  # past 5%
        {"raw_shop_orders": {"order_total_not_negative"}},
    ),
    Corruption(
        "more opens than sends (rates in [0, 1] are dbt's tests)",
        "update marts.fct_customer_features set email_unique_opens_30d = 15 where customer_key = 'ck-3'",
        {"fct_customer_features": {"opens_not_above_sends_30d"}},
    ),
    Corruption(
        "repeat purchases counted per order instead of per purchase day beyond the first",
        "update marts.fct_customer_features set repeat_frequency = frequency where customer_key = 'ck-7'",
        {"fct_customer_features": {"repeat_figures_consistent"}},
    ),
    Corruption(
        "send hour out of the week",
        "update ml.send_time_predictions set best_hour_of_week = 170 where customer_key = 'ck-9'",
        {"ml_send_time_predictions": {"best_hour_of_week_in_range", "hour_of_week_consistent"}},
    ),
    Corruption(
        "churn risk above 1 in a band that does not match",
        "update ml.customer_value set churn_risk = 1.2, churn_risk_band = 'Low' where customer_key = 'ck-5'",
        {"ml_customer_value": {"churn_risk_in_unit_range", "churn_band_matches_risk"}},
    ),
    Corruption(
        "send times after the epoch instead of the data's as-of",
        "update ml.send_time_predictions set next_send_at_utc = timestamptz '1970-01-06 10:00+00' "
        "where customer_key = 'ck-9'",
        {"ml_send_time_predictions": {"next_send_within_a_week_of_as_of"}},
    ),
    Corruption(
        "stale ESP feed (no events in the last three days)",
        f"delete from raw.esp_events where event_timestamp > timestamptz '{ANCHOR}' - interval '3 days'",
        {"raw_esp_events": {"newest_event_is_fresh"}},
    ),
    Corruption(
        "machine opens everywhere (user agents mangled to the proxy's)",
        "update raw.esp_events set user_agent = 'Mozilla/5.0' where event_type = 'open'",
        {"raw_esp_events": {"machine_open_share"}},
    ),
    Corruption(
        "a load that quarantined a fifth of the file",
        "update ops.load_log set loaded = 800, quarantined = 200, written = 800 "
        "where stream = 'web_events' and partition_key = '2025-03-01'",
        {"raw_web_events": {"quarantine_share"}},
    ),
    Corruption(
        "staging quarantined a fifth of the ESP events (e.g. a clock gone wrong: events from the future)",
        "update staging.quarantine_shares set staged_rows = 2400, quarantined_rows = 600, "
        "quarantine_share = 0.2 where source_table = 'esp_events'",
        {"staging_quarantine": {"quarantine_share"}},
    ),
    Corruption(
        "a load that lost rows (loaded + quarantined < received)",
        "update ops.load_log set loaded = 900 where stream = 'shop_orders'",
        {"raw_shop_orders": {"loads_balanced"}},
    ),
    Corruption(
        "contactable profiles that unsubscribed",
        "update marts.dim_customers set is_contactable = true where subscription_status = 'unsubscribed'",
        {"dim_customers": {"contactable_only_with_valid_email"}},
    ),
]
TRUNCATED_LOAD = "delete from raw.esp_events where substr(event_id, 4)::int % 2 = 0"


def failures(outcomes: dict) -> dict[str, set[str]]:
    """suite -> names of the checks that failed (suites without failures left out)."""
    failed = {
        name: {o.check for o in outcome.outcomes if not o.success} for name, outcome in outcomes.items()
    }
    return {name: checks for name, checks in failed.items() if checks}
