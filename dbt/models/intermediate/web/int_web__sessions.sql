{#- Web sessions: consecutive events of one visitor (anonymousId, or userId when there is none) with no
    gap longer than var session_timeout_minutes. -#}
with events as (
    select
        *,
        coalesce('anonymous_id:' || anonymous_id, 'shop_customer_id:' || user_id) as visitor
    from {{ ref('stg_web__events') }}
    where anonymous_id is not null or user_id is not null
),

flagged as (
    select
        *,
        case
            when lag(event_at) over (partition by visitor order by event_at, message_id) is null
                or event_at - lag(event_at) over (partition by visitor order by event_at, message_id)
                    > interval '{{ var("session_timeout_minutes") }} minutes'
                then 1
            else 0
        end as is_session_start
    from events
),

numbered as (
    select
        *,
        sum(is_session_start) over (
            partition by visitor order by event_at, message_id rows unbounded preceding
        ) as session_number
    from flagged
),

final as (
    select
        md5(visitor || '#' || min(event_at)::text) as session_id,
        visitor,
        max(anonymous_id) as anonymous_id,
        max(user_id) as user_id,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) filter (where event_type = 'page') as page_views,
        count(*) as events,
        extract(epoch from max(event_at) - min(event_at))::numeric as duration_seconds
    from numbered
    group by visitor, session_number
)

select * from final
