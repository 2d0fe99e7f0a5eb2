with source as (
    select * from {{ source('shop', 'shop_customers') }}
),

final as (
    select
        customer_id,
        customer_id::text as shop_customer_id,
        email,  -- the loaders' token (keyed hash of the normalised email; see ingestion/protection.py)
        email_encrypted,
        email_facts,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        phone,  -- token of the E.164 number
        phone_encrypted,
        phone_facts,
        coalesce(accepts_marketing, false) as accepts_marketing,
        created_at,
        coalesce(updated_at, created_at) as updated_at,
        _loaded_at
    from source
)

select * from final
