with sessions as (
    select * from {{ ref('int_web__sessions') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }}
),

customers as (
    select * from {{ ref('int_identity__customers') }}
),

final as (
    select
        sessions.session_id,
        customers.customer_key,
        sessions.anonymous_id,
        sessions.user_id as shop_customer_id,
        sessions.started_at,
        sessions.ended_at,
        sessions.page_views,
        sessions.events,
        sessions.duration_seconds
    from sessions
    left join record_keys as by_anonymous_id
        on by_anonymous_id.record_type = 'anonymous_id'
        and by_anonymous_id.record_id = sessions.anonymous_id
    left join record_keys as by_user_id
        on by_user_id.record_type = 'shop_customer_id'
        and by_user_id.record_id = sessions.user_id
    left join customers
        on customers.customer_key = coalesce(by_anonymous_id.customer_key, by_user_id.customer_key)
)

select * from final
where {{ not_suppressed('final.customer_key') }}
