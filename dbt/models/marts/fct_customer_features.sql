{{ config(materialized='view', contract={'enforced': true}) }}
{#- One row per customer: the stored features (int_customers__features) with the day counts computed at
    read time against the as-of instant, so a new day changes stored rows only for the customers it
    touches (cross-database date macros: this view moves to Spark as it is). -#}
with features as (
    select * from {{ ref('int_customers__features') }}
),

as_of as (
    select * from {{ ref('int_calendar__as_of') }}
),

final as (
    select
        features.customer_key,
        {{ whole_days_between('features.last_order_at', 'as_of.as_of_at') }} as recency_days,
        features.frequency,
        features.monetary,
        features.avg_order_value,
        {{ whole_days_between('features.first_order_at', 'as_of.as_of_at') }} as days_since_first_order,
        cast(round(
            features.frequency * 30.0 / greatest(
                {{ seconds_between('least(features.registered_at, features.first_order_at)', 'as_of.as_of_at') }}
                / 86400.0,
                1.0
            ),
            4
        ) as decimal(12, 4)) as purchase_frequency,
        features.email_sends_30d,
        features.email_unique_opens_30d,
        features.email_unique_clicks_30d,
        features.email_open_rate_30d,
        features.email_click_rate_30d,
        features.email_sends_90d,
        features.email_unique_opens_90d,
        features.email_unique_clicks_90d,
        features.email_open_rate_90d,
        features.email_click_rate_90d,
        features.web_sessions_30d,
        features.web_page_views_30d,
        features.avg_session_duration_seconds,
        features.active_days_30d,
        {{ whole_days_between('features.registered_at', 'as_of.as_of_at') }} as days_since_registration,
        features.top_categories,
        features.engagement_score,
        features.behavioural_segments,
        features.lifetime_value,
        features.first_purchase_at,
        features.last_purchase_at,
        features.repeat_frequency,
        features.repeat_monetary_value,
        features.purchase_span_days,
        {#- Days from the first purchase's UTC day to the as-of instant's UTC day. -#}
        {{ whole_days_between('features.first_purchase_day_at', 'as_of.as_of_at') }} as purchase_age_days
    from features
    cross join as_of
)

select * from final
