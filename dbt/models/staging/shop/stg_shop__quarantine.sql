with orders as (
    select * from {{ source('shop', 'shop_orders') }}
),

order_items as (
    select * from {{ source('shop', 'shop_order_items') }}
),

checked_orders as (
    select *, {{ quarantine_reason('shop_orders') }} as quarantine_reason
    from orders
),

checked_order_items as (
    select *, {{ quarantine_reason('shop_order_items') }} as quarantine_reason
    from order_items
),

final as (
    select {{ quarantine_columns('shop_orders', 'order_id') }}
    from checked_orders as checked
    where quarantine_reason is not null

    union all

    select {{ quarantine_columns('shop_order_items', 'order_item_id') }}
    from checked_order_items as checked
    where quarantine_reason is not null
)

select * from final
