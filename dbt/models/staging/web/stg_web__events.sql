{#- user_id, _staged_at / _loaded_at indexes: int_identity__touched_records and int_identity__observations look records up by them;
    _loaded_at also answers new_events_only's max(_loaded_at) without reading the table. -#}
{{
    config(
        materialized='incremental',
        unique_key='message_id',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['message_id'], 'unique': True}, {'columns': ['anonymous_id']},
            {'columns': ['user_id']}, {'columns': ['_staged_at']}, {'columns': ['_loaded_at']},
        ],
    )
}}

with source as (
    select * from {{ source('web', 'web_events') }}
    {{ new_events_only(source('web', 'web_events'), 'message_id') }}
),

checked as (
    {{ checked_first_copies('source', 'web_events') }}
),

final as (
    select
        message_id,
        lower(type) as event_type,
        event as event_name,
        nullif(trim(anonymous_id), '') as anonymous_id,
        nullif(trim(user_id), '') as user_id,
        event_timestamp as event_at,
        received_at,
        coalesce(page_path, properties ->> 'path', context -> 'page' ->> 'path') as page_path,
        coalesce(user_agent, context ->> 'userAgent') as user_agent,
        nullif(context ->> 'ip', '') as ip,
        nullif(properties ->> 'product_id', '') as product_id,
        nullif(properties ->> 'category', '') as category,
        nullif(properties ->> 'order_id', '') as order_id,
        traits ->> 'email' as traits_email,  -- the loaders' token (ingestion/protection.py)
        traits ->> 'email_encrypted' as traits_email_encrypted,
        traits -> 'email_facts' as traits_email_facts,
        nullif(trim(traits ->> 'first_name'), '') as traits_first_name,
        nullif(trim(traits ->> 'last_name'), '') as traits_last_name,
        nullif(context ->> 'timezone', '') as timezone,
        _file_date,
        _loaded_at,
        current_timestamp as _staged_at  -- the dbt run that staged the row; int_web__sessions reads it
    from checked
    where quarantine_reason is null
)

select * from final
