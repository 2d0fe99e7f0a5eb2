{{
    config(
        materialized='incremental',
        unique_key='email_event_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['email_event_id'], 'unique': True}, {'columns': ['customer_key']}],
        post_hook=["{{ drop_suppressed_rows() }}"],
    )
}}
{#- Incremental: new events, plus events whose customer_key changed (identity merges) or whose delivery
    was not yet known (the delivery arrived in a later file). Re-running without new data is a no-op. -#}

with events as (
    select * from {{ ref('stg_esp__events') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }} where record_type = 'esp_profile_id'
),

deliveries as (
    select esp_profile_id, message_id, min(event_at) as delivered_at
    from events
    where event_type = 'delivered'
    group by 1, 2
),

enriched as (
    select
        events.event_id as email_event_id,
        record_keys.customer_key,
        events.esp_profile_id,
        events.event_type,
        events.event_at,
        events.campaign_id,
        events.message_id,
        deliveries.delivered_at,
        extract(epoch from events.event_at - deliveries.delivered_at)::numeric as seconds_since_delivery,
        events.user_agent,
        events.url,
        events.bounce_type
    from events
    left join record_keys on record_keys.record_id = events.esp_profile_id
    left join deliveries using (esp_profile_id, message_id)
),

final as (
    select
        *,
        event_type = 'open' and (
            coalesce(seconds_since_delivery between 0 and {{ var('machine_open_max_seconds_after_delivery') }}, false)
            {%- for pattern in var('machine_open_user_agent_patterns') %}
            or coalesce(user_agent ilike '%{{ pattern }}%', false)
            {%- endfor %}
        ) as is_machine_open,
        current_timestamp as _built_at  -- the build that wrote the row: ml/send_time_predictions reads it
    from enriched
    where {{ not_suppressed('enriched.customer_key') }}
)

select * from final
{%- if is_incremental() %}
where email_event_id not in (select email_event_id from {{ this }})
   or email_event_id in (
        select existing.email_event_id
        from {{ this }} as existing
        inner join final as current using (email_event_id)
        where existing.customer_key is distinct from current.customer_key
           or existing.delivered_at is distinct from current.delivered_at
   )
{%- endif %}
