{#- The customer keys whose profile or features may differ from what the incremental customer marts
    (dim_customers, int_customers__features) stored at their previous build: the keys of records with
    staged rows loaded since then, of records sharing an email or phone with those (an identifier check
    can change for all of them), of identifiers that changed key (both the old and the new key: merges,
    splits), the previous key of orders that moved, and of records whose orders, email events or sessions
    a 30/90-day window took in or left because the as-of instant moved. Before any stamped build of the
    marts: every key. -#}
{{ config(materialized='table', indexes=[{'columns': ['customer_key'], 'unique': True}]) }}
{%- set stored_orders = adapter.get_relation(database=this.database, schema='marts', identifier='fct_orders') %}

with previous_build as (
    {{ previous_mart_build() }}
),

as_of as (
    select * from {{ ref('int_calendar__as_of') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

observations as (
    select * from {{ ref('int_identity__observations') }}
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

{#- Orders whose rows (or lines, or products) changed since the previous build. The shop staging views
    are read by ref() in each branch, not through the `orders` CTE (a CTE read twice is materialised
    whole), so the scalar watermark reaches raw's _loaded_at index: these reads follow the new rows. -#}
changed_orders as (
    select order_id, shop_customer_id
    from {{ ref('stg_shop__orders') }}
    where {{ loaded_after_previous_build('_loaded_at') }}
    union
    select orders.order_id, orders.shop_customer_id
    from {{ ref('stg_shop__order_items') }} as items
    inner join {{ ref('stg_shop__orders') }} as orders using (order_id)
    where {{ loaded_after_previous_build('items._loaded_at') }}
    union
    select orders.order_id, orders.shop_customer_id
    from {{ ref('stg_shop__products') }} as products
    inner join {{ ref('stg_shop__order_items') }} as items using (product_id)
    inner join {{ ref('stg_shop__orders') }} as orders using (order_id)
    where {{ loaded_after_previous_build('products._loaded_at') }}
),

touched_records as (
    select 'crm_contact_id' as record_type, crm_contact_id as record_id
    from {{ ref('stg_crm__contacts') }}
    cross join previous_build
    where {{ loaded_since('previous_build') }}
    union
    select 'shop_customer_id', shop_customer_id
    from {{ ref('stg_shop__customers') }}
    where {{ loaded_after_previous_build('_loaded_at') }}
    union
    select 'shop_customer_id', shop_customer_id from changed_orders
    union
    {# Orders entering or leaving the 31 days of recent_purchaser (recency_days <= 30). #}
    select 'shop_customer_id', orders.shop_customer_id
    from orders
    cross join previous_build
    cross join as_of
    where {{ crossed_window_edge('orders.ordered_at', 'previous_build', 'as_of', 0) }}
       or {{ crossed_window_edge('orders.ordered_at', 'previous_build', 'as_of', 31) }}
    union
    select 'esp_profile_id', esp_profile_id
    from {{ ref('stg_esp__events') }}
    cross join previous_build
    cross join as_of
    where esp_profile_id is not null
      and (
        {{ loaded_since('previous_build') }}
        {%- for days in [0, 30, 90] %}
        or {{ crossed_window_edge('event_at', 'previous_build', 'as_of', days) }}
        {%- endfor %}
      )
    union
    select 'anonymous_id', anonymous_id
    from {{ ref('stg_web__events') }}
    cross join previous_build
    where anonymous_id is not null and {{ loaded_since('previous_build') }}
    union
    select 'shop_customer_id', user_id
    from {{ ref('stg_web__events') }}
    cross join previous_build
    where user_id is not null and {{ loaded_since('previous_build') }}
    union
    select
        case when sessions.anonymous_id is null then 'shop_customer_id' else 'anonymous_id' end,
        coalesce(sessions.anonymous_id, sessions.user_id)
    from {{ ref('int_web__sessions') }} as sessions
    cross join previous_build
    cross join as_of
    where {{ crossed_window_edge('sessions.started_at', 'previous_build', 'as_of', 0) }}
       or {{ crossed_window_edge('sessions.started_at', 'previous_build', 'as_of', 30) }}
),

{#- A new record carrying an email or phone can change that identifier's checks (over-merge, junk) and
    so what the other records holding it may contribute. -#}
sharing_records as (
    select distinct others.record_type, others.record_id
    from touched_records
    inner join observations as touched using (record_type, record_id)
    inner join observations as others
        on others.identifier_type = touched.identifier_type
        and others.identifier_value = touched.identifier_value
    where touched.identifier_type in ('email', 'phone')
),

touched_keys as (
    select record_keys.customer_key
    from record_keys
    inner join touched_records using (record_type, record_id)
    union
    select record_keys.customer_key
    from record_keys
    inner join sharing_records using (record_type, record_id)
    union
    select identifiers.customer_key
    from identifiers
    cross join previous_build
    where {{ loaded_since('previous_build', 'identifiers.key_changed_at') }}
    union
    select identifiers.previous_customer_key
    from identifiers
    cross join previous_build
    where {{ loaded_since('previous_build', 'identifiers.key_changed_at') }}
    {%- if stored_orders is not none %}
    union
    {# fct_orders (built after this model) still holds the key an order had before it moved. #}
    select stored.customer_key
    from {{ stored_orders }} as stored
    inner join changed_orders using (order_id)
    {%- endif %}
),

final as (
    select distinct customer_key
    from touched_keys
    where customer_key is not null
)

select * from final
