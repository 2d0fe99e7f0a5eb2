{{
    config(
        materialized='incremental',
        unique_key='customer_key',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_key'], 'unique': True}],
        post_hook=["{{ drop_rows_gone_from(ref('dim_customers'), 'customer_key') }}"],
    )
}}
{#- The stored part of fct_customer_features, one row per customer: RFM, email engagement (machine opens
    excluded), web activity, the seed's engagement score and rule-based behavioural segments, with the
    dates the day counts start from (fct_customer_features computes those at read time). Windows end at
    the build's "as of" instant. Incremental by customer: a build rewrites the keys of
    int_customers__touched_keys, which holds the customers whose data changed and those with an order,
    email event or session that a window edge crossed, so every stored count is what a full rebuild gives;
    customers gone from dim_customers (retired, suppressed) are deleted by the post-hook. -#}
-- depends_on: {{ ref('int_customers__touched_keys') }}
with as_of as (
    select * from {{ ref('int_calendar__as_of') }}
),

{% if is_incremental() -%}
scope as (
    select customer_key from {{ ref('int_customers__touched_keys') }}
    union
    {# Customers without a row (no longer suppressed, say). #}
    select profiles.customer_key
    from {{ ref('dim_customers') }} as profiles
    where not exists (select 1 from {{ this }} as stored where stored.customer_key = profiles.customer_key)
),

{% endif -%}
customers as (
    select * from {{ ref('dim_customers') }} where {{ in_scope('customer_key') }}
),

orders as (
    select fct_orders.*
    from {{ ref('fct_orders') }} as fct_orders
    cross join as_of
    where fct_orders.customer_key is not null
      and fct_orders.ordered_at <= as_of.as_of_at
      and {{ in_scope('fct_orders.customer_key') }}
),

order_items as (
    select * from {{ ref('stg_shop__order_items') }}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

email_events as (
    select fct_email_events.*
    from {{ ref('fct_email_events') }} as fct_email_events
    cross join as_of
    where fct_email_events.customer_key is not null
      and fct_email_events.event_at <= as_of.as_of_at
      and {{ in_scope('fct_email_events.customer_key') }}
),

sessions as (
    select fct_web_sessions.*
    from {{ ref('fct_web_sessions') }} as fct_web_sessions
    cross join as_of
    where fct_web_sessions.customer_key is not null
      and fct_web_sessions.started_at <= as_of.as_of_at
      and {{ in_scope('fct_web_sessions.customer_key') }}
      and fct_web_sessions.started_at > as_of.as_of_at - interval '30 days'
),

rfm as (
    select
        customer_key,
        count(*) filter (where is_completed) as frequency,
        coalesce(sum(order_total) filter (where is_completed), 0) as monetary,
        min(ordered_at) filter (where is_completed) as first_order_at,
        max(ordered_at) filter (where is_completed) as last_order_at
    from orders
    group by 1
),

{#- Repeat purchases as the customer-base-analysis literature counts them (Fader & Hardie): purchases
    are days (UTC) with a completed order, the first of them is the trial, the others are repeats. -#}
purchase_days as (
    select
        customer_key,
        (ordered_at at time zone 'UTC')::date as purchase_day,
        sum(order_total) as day_value
    from orders
    where is_completed
    group by 1, 2
),

repeat_purchases as (
    select
        customer_key,
        min(ordered_at) as first_purchase_at,
        max(ordered_at) as last_purchase_at,
        count(distinct (ordered_at at time zone 'UTC')::date) - 1 as repeat_frequency,
        max((ordered_at at time zone 'UTC')::date) - min((ordered_at at time zone 'UTC')::date)
            as purchase_span_days,
        min((ordered_at at time zone 'UTC')::date) at time zone 'UTC' as first_purchase_day_at
    from orders
    where is_completed
    group by 1
),

repeat_values as (
    select
        purchase_days.customer_key,
        avg(purchase_days.day_value) as repeat_monetary_value
    from purchase_days
    inner join repeat_purchases using (customer_key)
    where purchase_days.purchase_day > (repeat_purchases.first_purchase_at at time zone 'UTC')::date
    group by 1
),

category_ranks as (
    select
        orders.customer_key,
        products.category,
        row_number() over (
            partition by orders.customer_key order by sum(order_items.quantity) desc, products.category
        ) as category_rank
    from orders
    inner join order_items using (order_id)
    inner join products using (product_id)
    where orders.is_completed and products.category is not null
    group by 1, 2
),

categories as (
    select
        customer_key,
        string_agg(category, ',' order by category_rank)
            filter (where category_rank <= {{ var('top_categories_limit') }}) as top_categories,
        string_agg('purchased_' || {{ segment_slug('category') }}, ',' order by category) as category_segments
    from category_ranks
    group by 1
),

{#- Email windows are cohorts: messages sent in the window, and whether a human opened/clicked them. -#}
messages as (
    select
        email_events.customer_key,
        email_events.message_id,
        min(email_events.event_at) filter (where email_events.event_type = 'sent') as sent_at,
        bool_or(email_events.event_type = 'open' and not email_events.is_machine_open) as was_opened,
        bool_or(email_events.event_type = 'click') as was_clicked
    from email_events
    group by 1, 2
),

email_windows as (
    select
        messages.customer_key,
        {%- for days in [30, 90] %}
        count(*) filter (where messages.sent_at > as_of.as_of_at - interval '{{ days }} days') as sends_{{ days }}d,
        count(*) filter (
            where messages.sent_at > as_of.as_of_at - interval '{{ days }} days' and messages.was_opened
        ) as opens_{{ days }}d,
        count(*) filter (
            where messages.sent_at > as_of.as_of_at - interval '{{ days }} days' and messages.was_clicked
        ) as clicks_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}
    from messages
    cross join as_of
    where messages.sent_at is not null
    group by 1
),

email_engagement as (
    select
        email_events.customer_key,
        count(*) as engagement_events_30d
    from email_events
    cross join as_of
    where email_events.event_at > as_of.as_of_at - interval '30 days'
      and (email_events.event_type = 'click' or (email_events.event_type = 'open' and not email_events.is_machine_open))
    group by 1
),

web as (
    select
        customer_key,
        count(*) as web_sessions_30d,
        sum(page_views) as web_page_views_30d,
        sum(events) as web_events_30d,
        avg(duration_seconds) as avg_session_duration_seconds,
        count(distinct started_at::date) as active_days_30d
    from sessions
    group by 1
),

features as (
    select
        customers.customer_key,
        as_of.as_of_at,
        {#- Only for recent_purchaser below; fct_customer_features computes it at read time. -#}
        {{ whole_days_between('rfm.last_order_at', 'as_of.as_of_at') }} as recency_days,
        coalesce(rfm.frequency, 0)::integer as frequency,
        coalesce(rfm.monetary, 0)::numeric(14, 2) as monetary,
        case when coalesce(rfm.frequency, 0) > 0
            then round(rfm.monetary / rfm.frequency, 2) else 0 end::numeric(14, 2) as avg_order_value,
        rfm.first_order_at,
        rfm.last_order_at,
        {%- for days in [30, 90] %}
        coalesce(email_windows.sends_{{ days }}d, 0)::integer as email_sends_{{ days }}d,
        coalesce(email_windows.opens_{{ days }}d, 0)::integer as email_unique_opens_{{ days }}d,
        coalesce(email_windows.clicks_{{ days }}d, 0)::integer as email_unique_clicks_{{ days }}d,
        case when coalesce(email_windows.sends_{{ days }}d, 0) > 0
            then round(email_windows.opens_{{ days }}d::numeric / email_windows.sends_{{ days }}d, 4)
            else 0 end::numeric(6, 4) as email_open_rate_{{ days }}d,
        case when coalesce(email_windows.sends_{{ days }}d, 0) > 0
            then round(email_windows.clicks_{{ days }}d::numeric / email_windows.sends_{{ days }}d, 4)
            else 0 end::numeric(6, 4) as email_click_rate_{{ days }}d,
        {%- endfor %}
        coalesce(web.web_sessions_30d, 0)::integer as web_sessions_30d,
        coalesce(web.web_page_views_30d, 0)::integer as web_page_views_30d,
        round(coalesce(web.avg_session_duration_seconds, 0), 1)::numeric(12, 1) as avg_session_duration_seconds,
        coalesce(web.active_days_30d, 0)::integer as active_days_30d,
        coalesce(web.web_events_30d, 0)::integer as web_events_30d,
        coalesce(email_engagement.engagement_events_30d, 0)::integer as email_engagement_events_30d,
        customers.registered_at,
        coalesce(categories.top_categories, '') as top_categories,
        categories.category_segments,
        customers.lifetime_value,
        repeat_purchases.first_purchase_at,
        repeat_purchases.last_purchase_at,
        coalesce(repeat_purchases.repeat_frequency, 0)::integer as repeat_frequency,
        round(repeat_values.repeat_monetary_value, 2)::numeric(14, 2) as repeat_monetary_value,
        repeat_purchases.purchase_span_days::integer as purchase_span_days,
        repeat_purchases.first_purchase_day_at
    from customers
    cross join as_of
    left join rfm using (customer_key)
    left join repeat_purchases using (customer_key)
    left join repeat_values using (customer_key)
    left join categories using (customer_key)
    left join email_windows using (customer_key)
    left join email_engagement using (customer_key)
    left join web using (customer_key)
),

{#- The seed's engagement score: four components capped at 1, weighted 0.25 each, rounded to 3 places. -#}
scored as (
    select
        *,
        round(
            0.25 * least(web_sessions_30d / {{ var('engagement_sessions_cap') }}.0, 1)
            + 0.25 * least(web_page_views_30d / {{ var('engagement_page_views_cap') }}.0, 1)
            + 0.25 * least(avg_session_duration_seconds / {{ var('engagement_duration_cap_seconds') }}.0, 1)
            + 0.25 * least(active_days_30d / {{ var('engagement_active_days_cap') }}.0, 1),
            3
        )::numeric(4, 3) as engagement_score
    from features
),

segmented as (
    select
        *,
        concat_ws(
            ',',
            case when lifetime_value >= {{ var('segment_high_value_ltv') }} then 'high_value_customer' end,
            case when engagement_score >= {{ var('segment_highly_engaged_score') }} then 'highly_engaged' end,
            case when recency_days <= {{ var('segment_recent_purchase_days') }} then 'recent_purchaser' end,
            category_segments,
            case when email_engagement_events_30d >= {{ var('segment_email_engaged_events_30d') }}
                then 'email_engaged' end,
            case when web_events_30d >= {{ var('segment_web_active_events_30d') }} then 'web_active' end
        ) as behavioural_segments
    from scored
),

final as (
    select
        customer_key,
        registered_at,
        first_order_at,
        last_order_at,
        frequency,
        monetary,
        avg_order_value,
        email_sends_30d,
        email_unique_opens_30d,
        email_unique_clicks_30d,
        email_open_rate_30d,
        email_click_rate_30d,
        email_sends_90d,
        email_unique_opens_90d,
        email_unique_clicks_90d,
        email_open_rate_90d,
        email_click_rate_90d,
        web_sessions_30d,
        web_page_views_30d,
        avg_session_duration_seconds,
        active_days_30d,
        top_categories,
        engagement_score,
        behavioural_segments,
        lifetime_value,
        first_purchase_at,
        last_purchase_at,
        repeat_frequency,
        repeat_monetary_value,
        purchase_span_days,
        first_purchase_day_at,
        as_of_at as _as_of_at,
        current_timestamp as _built_at
    from segmented
)

select * from final
