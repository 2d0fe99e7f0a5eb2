with source as (
    select * from {{ source('shop', 'shop_products') }}
),

final as (
    select
        product_id,
        sku,
        name as product_name,
        nullif(trim(category), '') as category,
        price,
        created_at,
        updated_at,
        _loaded_at
    from source
)

select * from final
