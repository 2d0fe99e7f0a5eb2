{#- _loaded_at index: int_identity__touched_records finds the profiles of new events by it. -#}
{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['event_id'], 'unique': True}, {'columns': ['esp_profile_id', 'message_id']},
            {'columns': ['_loaded_at']},
        ],
    )
}}

with source as (
    select * from {{ source('esp', 'esp_events') }}
    {{ new_events_only(source('esp', 'esp_events'), 'event_id') }}
),

checked as (
    {{ checked_first_copies('source', 'esp_events') }}
),

final as (
    select
        event_id,
        lower(event_type) as event_type,
        nullif(trim(profile_id), '') as esp_profile_id,
        email,  -- the loaders' token (ingestion/protection.py)
        email_encrypted,
        email_facts,
        campaign_id,
        message_id,
        event_timestamp as event_at,
        user_agent,
        ip,
        url,
        lower(bounce_type) as bounce_type,
        _file_date,
        _loaded_at,
        current_timestamp as _staged_at  -- the dbt run that staged the row (the daily tests check these)
    from checked
    where quarantine_reason is null
)

select * from final
