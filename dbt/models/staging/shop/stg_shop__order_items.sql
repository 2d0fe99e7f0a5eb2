with source as (
    select * from {{ source('shop', 'shop_order_items') }}
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
        updated_at
    from source
)

select * from final
