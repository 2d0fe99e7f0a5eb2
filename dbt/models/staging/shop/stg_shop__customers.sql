with source as (
    select * from {{ source('shop', 'shop_customers') }}
),

final as (
    select
        customer_id,
        customer_id::text as shop_customer_id,
        {{ normalize_email('email') }} as email,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        {{ phone_e164('phone') }} as phone,
        nullif(trim(phone), '') as phone_raw,
        coalesce(accepts_marketing, false) as accepts_marketing,
        created_at,
        coalesce(updated_at, created_at) as updated_at,
        _loaded_at
    from source
)

select * from final
