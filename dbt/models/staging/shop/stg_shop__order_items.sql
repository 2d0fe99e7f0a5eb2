with source as (
    select * from {{ source('shop', 'shop_order_items') }}
),

checked as (
    select *, {{ quarantine_reason('shop_order_items') }} as quarantine_reason
    from source
),

final as (
    select
        order_item_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        quantity * unit_price as line_total,
        created_at,
        updated_at,
        _loaded_at
    from checked
    where quarantine_reason is null
)

select * from final
