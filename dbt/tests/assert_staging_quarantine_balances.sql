{#- For every staged raw table: rows in raw (after dedupe by key) = staged + quarantined. Nothing is
    dropped silently between raw and staging (an order without ordered_at is staged with its
    created_at/updated_at, so it counts as staged; only one with no time at all is quarantined).
    A whole-table count of every raw row, so only the weekly full tests run it (var data_tests_full);
    daily it holds by construction (one rule macro and one first-copy choice for staging and quarantine). -#}
{{ config(enabled=var('data_tests_full', false)) }}
with raw_counts as (
    select 'shop_orders' as source_table, count(*) as raw_rows from {{ source('shop', 'shop_orders') }}
    union all
    select 'shop_order_items', count(*) from {{ source('shop', 'shop_order_items') }}
    union all
    select 'esp_events', count(distinct event_id) from {{ source('esp', 'esp_events') }}
    union all
    select 'web_events', count(distinct message_id) from {{ source('web', 'web_events') }}
)

select
    raw_counts.source_table,
    raw_counts.raw_rows,
    shares.staged_rows,
    shares.quarantined_rows
from raw_counts
left join {{ ref('quarantine_shares') }} as shares on shares.source_table = raw_counts.source_table
where shares.checked_rows is distinct from raw_counts.raw_rows
