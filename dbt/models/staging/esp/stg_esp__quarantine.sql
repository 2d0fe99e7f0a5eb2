{{
    config(
        materialized='incremental',
        unique_key='quarantine_id',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['quarantine_id'], 'unique': True}, {'columns': ['source_key']}],
        post_hook=["{{ drop_superseded_quarantine('stg_esp__events', 'event_id') }}"],
    )
}}

with source as (
    select * from {{ source('esp', 'esp_events') }} as raw_rows
    {{ new_quarantine_candidates('event_id', 'stg_esp__events') }}
),

checked as (
    {{ checked_first_copies('source', 'esp_events') }}
),

final as (
    select {{ quarantine_columns('esp_events', 'event_id') }}
    from checked
    where quarantine_reason is not null
)

select * from final
