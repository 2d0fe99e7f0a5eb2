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
        coalesce(ordered_at, created_at, updated_at) as ordered_at,
        case
            when ordered_at is not null then 'ordered_at'
            when created_at is not null then 'created_at'
            else 'updated_at'
        end as ordered_at_source,
        created_at,
        updated_at,
        _loaded_at
    from checked
    where quarantine_reason is null
)

select * from final
