{#- One row per identifier with the reason, if any, it must not be used to merge people:
    blocked (built-in rules or the identity_blocklist seed), malformed, or shared by more source records of
    one kind than var identity_max_records_per_identifier (the over-merge guard; for anonymousIds: more
    than one shop user or email, i.e. a shared device). Record ids themselves are never excluded.
    Incremental by identifier: a pre-hook deletes the rows of int_identity__touched_identifiers, the build
    appends their checks recounted over all observations (index lookups). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ drop_touched_identity_rows('identifier') }}",
        indexes=[{'columns': ['identifier_type', 'identifier_value'], 'unique': True}],
    )
}}
-- depends_on: {{ ref('int_identity__touched_identifiers') }}

{# `not materialized` (Postgres): the filters reach the index scans instead of a copy of the table. -#}
with all_observations as not materialized (
    select * from {{ ref('int_identity__observations') }}
),

{#- The observations of the identifiers checked in this build. -#}
observations as not materialized (
    select *
    from all_observations as o
    where {{ identity_identifier_touched('o.identifier_type', 'o.identifier_value') }}
),


blocklist as (
    select * from {{ ref('identity_blocklist') }}
),

protected_values as (
    select * from {{ ref('int_identity__protected_values') }}
),

identifiers as (
    select
        identifier_type,
        identifier_value,
        string_agg(distinct source, ',' order by source) as sources,
        min(observed_at) as first_seen_at
    from observations
    group by 1, 2
),

{#- How many distinct records of each kind link to an identifier (a web record links anonymousId to the
    userId/email it identified as, so for anonymousIds count the distinct users/emails instead). -#}
{#- For IPs: how many identified people (distinct userIds / emails) browsed from it. -#}
ip_people as (
    select
        ip.identifier_value,
        max(people) as identified_people
    from (
        select
            ip.identifier_value,
            other.identifier_type,
            count(distinct other.identifier_value) as people
        from observations as ip
        inner join all_observations as other
            on other.record_type = 'anonymous_id'
            and other.record_id = ip.record_id
            and other.identifier_type in ('shop_customer_id', 'email')
        where ip.identifier_type = 'ip'
        group by 1, 2
    ) as ip
    group by 1
),

sharing as (
    select
        identifier_type,
        identifier_value,
        max(records) as max_records_of_one_kind
    from (
        select
            o.identifier_type,
            o.identifier_value,
            o.record_type,
            count(distinct o.record_id) as records
        from observations as o
        -- people own several devices: anonymousIds do not count towards an email's/phone's sharing
        where (o.identifier_type in ('email', 'phone') and o.record_type <> 'anonymous_id')
           or o.identifier_type = 'ip'
        group by 1, 2, 3
        union all
        select
            a.identifier_type,
            a.identifier_value,
            b.identifier_type,
            count(distinct b.identifier_value)
        from observations as a
        inner join all_observations as b
            on a.record_type = 'anonymous_id'
            and b.record_type = 'anonymous_id'
            and a.record_id = b.record_id
            and a.identifier_type = 'anonymous_id'
            and b.identifier_type in ('shop_customer_id', 'email')
        group by 1, 2, 3
    ) as per_kind
    group by 1, 2
),

blocked as (
    select
        i.identifier_type,
        i.identifier_value,
        min(b.reason) as reason,
        bool_or(coalesce(b.marks_test_account, false)) as marks_test_account
    from identifiers as i
    left join protected_values as p using (identifier_type, identifier_value)
    inner join blocklist as b  -- emails and phones are tokens: the blocked values are tokenised alike
        on b.identifier_type = i.identifier_type
        and (
            (b.match_type = 'exact' and i.identifier_value = {{ keyed_hash('lower(b.value)') }})
            or (b.match_type = 'local_part' and p.email_local_part = {{ keyed_hash('lower(b.value)') }})
            or (b.match_type = 'domain' and p.email_domain = {{ keyed_hash('lower(b.value)') }})
        )
    group by 1, 2
),

final as (
    select
        i.identifier_type,
        i.identifier_value,
        i.sources,
        i.first_seen_at,
        coalesce(s.max_records_of_one_kind, 1) as max_records_of_one_kind,
        coalesce(b.marks_test_account, false) as is_test_identifier,
        case
            -- emails and phones are tokens: validity and placeholders were judged at load
            when i.identifier_type = 'email' and not coalesce(p.is_valid_email, false)
                then 'malformed email'
            when i.identifier_type = 'email' and p.is_placeholder_email
                then 'placeholder email'
            when i.identifier_type = 'phone' and p.phone_placeholder_reason is not null
                then p.phone_placeholder_reason
            when b.reason is not null then 'blocklist: ' || b.reason
            when i.identifier_type = 'anonymous_id' and coalesce(s.max_records_of_one_kind, 1) > 1
                then 'shared device: anonymousId identified as several people'
            when i.identifier_type = 'ip' and coalesce(ip_people.identified_people, 0) <> 1
                then case when ip_people.identified_people > 1 then 'shared IP: several identified people'
                    else 'IP of no identified person' end
            when i.identifier_type = 'ip'
                and coalesce(s.max_records_of_one_kind, 1) > {{ var('identity_max_anonymous_ids_per_ip') }}
                then 'over-merge guard: IP used by ' || s.max_records_of_one_kind || ' anonymousIds'
            when i.identifier_type in ('email', 'phone')
                and coalesce(s.max_records_of_one_kind, 1) > {{ var('identity_max_records_per_identifier') }}
                then 'over-merge guard: shared by '
                    || s.max_records_of_one_kind || ' records of one source'
        end as excluded_reason,
        {{ dbt.current_timestamp() }} as _built_at
    from identifiers as i
    left join sharing as s using (identifier_type, identifier_value)
    left join blocked as b using (identifier_type, identifier_value)
    left join protected_values as p using (identifier_type, identifier_value)
    left join ip_people
        on i.identifier_type = 'ip' and ip_people.identifier_value = i.identifier_value
)

select * from final
