with orders as (
    select * from {{ ref('stg_shop__orders') }}
),

items as (
    select * from {{ ref('stg_shop__order_items') }}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }} where record_type = 'shop_customer_id'
),

order_lines as (
    select
        items.order_id,
        count(*) as line_count,
        sum(items.quantity) as item_quantity,
        string_agg(distinct products.category, ',' order by products.category) as categories
    from items
    left join products using (product_id)
    group by 1
),

final as (
    select
        orders.order_id,
        record_keys.customer_key,
        orders.customer_id as shop_customer_id,
        orders.status,
        orders.status = 'completed' as is_completed,
        orders.order_total,
        case when orders.status = 'completed' then orders.order_total else 0 end as net_revenue,
        orders.currency,
        orders.ordered_at,
        orders.ordered_at_source,
        coalesce(order_lines.line_count, 0) as line_count,
        coalesce(order_lines.item_quantity, 0) as item_quantity,
        order_lines.categories,
        orders.updated_at
    from orders
    left join record_keys on record_keys.record_id = orders.shop_customer_id
    left join order_lines using (order_id)
)

select * from final
where {{ not_suppressed('final.customer_key') }}
