{#- The identifiers whose check (int_identity__identifier_checks) or graph edges may differ from the
    identity chain's previous build: every identifier the touched records (int_identity__touched_records)
    had then or have now. An identifier's sharing counts and reasons depend only on the records holding
    it (and, for IPs and anonymousIds, on those records' other identifiers), so no other check changes. -#}
{{ config(indexes=[{'columns': ['identifier_type', 'identifier_value'], 'unique': True}]) }}

with touched_records as (
    select * from {{ ref('int_identity__touched_records') }}
),

observations as (
    select * from {{ ref('int_identity__observations') }}
),

final as (
    select identifier_type, identifier_value
    from touched_records
    where identifier_type is not null
    union
    select observations.identifier_type, observations.identifier_value
    from observations
    inner join (select distinct record_type, record_id from touched_records) as records
        on records.record_type = observations.record_type and records.record_id = observations.record_id
)

select * from final
