with source as (
    select * from {{ source('shop', 'shop_orders') }}
),

final as (
    select
        order_id,
        customer_id,
        customer_id::text as shop_customer_id,
        lower(status) as status,
        order_total,
        upper(currency) as currency,
        ordered_at,
        created_at,
        updated_at
    from source
)

select * from final
