{#- Per staged raw table: rows staged, rows quarantined and the quarantine share (checked by the
    expectations/staging_quarantine.yml suite). -#}
with staged_orders as (
    select 'shop_orders' as source_table, count(*) as staged_rows from {{ ref('stg_shop__orders') }}
),

staged_order_items as (
    select 'shop_order_items' as source_table, count(*) as staged_rows from {{ ref('stg_shop__order_items') }}
),

staged_esp_events as (
    select 'esp_events' as source_table, count(*) as staged_rows from {{ ref('stg_esp__events') }}
),

staged_web_events as (
    select 'web_events' as source_table, count(*) as staged_rows from {{ ref('stg_web__events') }}
),

quarantined as (
    select source_table, count(*) as quarantined_rows
    from {{ ref('quarantine_rows') }}
    group by source_table
),

staged as (
    select * from staged_orders
    union all
    select * from staged_order_items
    union all
    select * from staged_esp_events
    union all
    select * from staged_web_events
),

final as (
    select
        staged.source_table,
        staged.staged_rows,
        coalesce(quarantined.quarantined_rows, 0) as quarantined_rows,
        staged.staged_rows + coalesce(quarantined.quarantined_rows, 0) as checked_rows,
        coalesce(
            coalesce(quarantined.quarantined_rows, 0)::float8
            / nullif(staged.staged_rows + coalesce(quarantined.quarantined_rows, 0), 0),
            0
        ) as quarantine_share
    from staged
    left join quarantined on quarantined.source_table = staged.source_table
)

select * from final
