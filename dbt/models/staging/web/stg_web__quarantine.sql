{{
    config(
        materialized='incremental',
        unique_key='quarantine_id',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['quarantine_id'], 'unique': True}, {'columns': ['source_key']}],
        post_hook=["{{ drop_superseded_quarantine('stg_web__events', 'message_id') }}"],
    )
}}

with source as (
    select * from {{ source('web', 'web_events') }} as raw_rows
    {{ new_quarantine_candidates('message_id', 'stg_web__events') }}
),

checked as (
    {{ checked_first_copies('source', 'web_events') }}
),

final as (
    select {{ quarantine_columns('web_events', 'message_id') }}
    from checked
    where quarantine_reason is not null
)

select * from final
