{{
    config(
        materialized='incremental',
        unique_key='session_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['session_id'], 'unique': True}, {'columns': ['customer_key']}],
        pre_hook=["{{ drop_resessionised_visitors() }}"],
        post_hook=["{{ drop_suppressed_rows() }}"],
    )
}}
{#- Web sessions with the person they belong to. Incremental by touched visitor: the pre-hook deletes the
    sessions of the visitors int_web__sessions re-sessionised since this table's last build (their session
    ids can change: a late event joins or splits sessions), and a build writes the sessions not stored
    (those visitors' sessions, new visitors, a lifted suppression) and those whose customer_key changed (an
    identity merge or split); suppressed people's sessions are deleted by the post-hook. So a build equals
    a full rebuild, and a run without new events or key changes writes nothing. -#}
with sessions as (
    select * from {{ ref('int_web__sessions') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }}
),

customers as (
    select * from {{ ref('int_identity__customers') }}
),

keyed_sessions as (
    select
        sessions.session_id,
        customers.customer_key
    from sessions
    left join record_keys as by_anonymous_id
        on by_anonymous_id.record_type = 'anonymous_id'
        and by_anonymous_id.record_id = sessions.anonymous_id
    left join record_keys as by_user_id
        on by_user_id.record_type = 'shop_customer_id'
        and by_user_id.record_id = sessions.user_id
    left join customers
        on customers.customer_key = coalesce(by_anonymous_id.customer_key, by_user_id.customer_key)
),

{% if is_incremental() -%}
touched_sessions as (
    select keyed_sessions.session_id
    from keyed_sessions
    left join {{ this }} as previous using (session_id)
    where previous.session_id is null
       or previous.customer_key is distinct from keyed_sessions.customer_key
),

{% endif -%}
final as (
    select
        sessions.session_id,
        keyed_sessions.customer_key,
        sessions.anonymous_id,
        sessions.user_id as shop_customer_id,
        sessions.started_at,
        sessions.ended_at,
        sessions.page_views,
        sessions.events,
        sessions.duration_seconds,
        current_timestamp as _built_at  -- the build that wrote the row (the daily tests check these)
    from sessions
    inner join keyed_sessions using (session_id)
    {%- if is_incremental() %}
    where sessions.session_id in (select session_id from touched_sessions)
    {%- endif %}
)

select * from final
where {{ not_suppressed('final.customer_key') }}
