with source as (
    select * from {{ source('shop', 'shop_orders') }}
),

checked as (
    select *, {{ quarantine_reason('shop_orders') }} as quarantine_reason
    from source
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
    from checked
    where quarantine_reason is null
)

select * from final
