{#- Web sessions: consecutive events of one visitor (anonymousId, or userId when there is none) with no
    gap longer than var session_timeout_minutes. Incremental by visitor: a run re-sessionises only the
    visitors with events staged since the sessions were last built (stg_web__events._staged_at), over
    their whole history, and replaces their sessions, so a late event that joins or splits a session is
    handled and a run with no new events changes nothing. A table built before last_staged_at existed has
    no mark: its first incremental run re-sessionises every visitor (and gets the column). -#}
{{
    config(
        materialized='incremental',
        unique_key='visitor',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['visitor']}],
    )
}}

{%- set has_stage_mark = is_incremental()
    and 'last_staged_at' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) %}

with events as (
    select
        *,
        coalesce('anonymous_id:' || anonymous_id, 'shop_customer_id:' || user_id) as visitor
    from {{ ref('stg_web__events') }}
    where anonymous_id is not null or user_id is not null
),

{% if has_stage_mark -%}
changed_visitors as (
    select distinct visitor
    from events
    where _staged_at > (select coalesce(max(last_staged_at), '-infinity'::timestamptz) from {{ this }})
),

{% endif -%}
visitor_events as (
    select *
    from events
    {%- if has_stage_mark %}
    where visitor in (select visitor from changed_visitors)
    {%- endif %}
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
    from visitor_events
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
        extract(epoch from max(event_at) - min(event_at))::numeric as duration_seconds,
        max(_staged_at) as last_staged_at
    from numbered
    group by visitor, session_number
)

select * from final
