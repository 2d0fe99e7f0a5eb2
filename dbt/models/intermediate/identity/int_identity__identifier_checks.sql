{#- One row per identifier with the reason, if any, it must not be used to merge people:
    blocked (built-in rules or the identity_blocklist seed), malformed, or shared by more source records of
    one kind than var identity_max_records_per_identifier (the over-merge guard; for anonymousIds: more
    than one shop user or email, i.e. a shared device). Record ids themselves are never excluded. -#}
with observations as (
    select * from {{ ref('int_identity__observations') }}
),

blocklist as (
    select * from {{ ref('identity_blocklist') }}
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
        where o.identifier_type in ('email', 'phone')
        group by 1, 2, 3
        union all
        select
            a.identifier_type,
            a.identifier_value,
            b.identifier_type,
            count(distinct b.identifier_value)
        from observations as a
        inner join observations as b
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
    select distinct
        i.identifier_type,
        i.identifier_value,
        first_value(b.reason) over (
            partition by i.identifier_type, i.identifier_value order by b.match_type, b.value
        ) as reason
    from identifiers as i
    inner join blocklist as b
        on b.identifier_type = i.identifier_type
        and (
            (b.match_type = 'exact' and i.identifier_value = lower(b.value))
            or (b.match_type = 'local_part' and split_part(i.identifier_value, '@', 1) = lower(b.value))
            or (b.match_type = 'domain' and split_part(i.identifier_value, '@', 2) = lower(b.value))
        )
),

final as (
    select
        i.identifier_type,
        i.identifier_value,
        i.sources,
        i.first_seen_at,
        coalesce(s.max_records_of_one_kind, 1) as max_records_of_one_kind,
        case
            when i.identifier_type = 'email' and not {{ is_valid_email('i.identifier_value') }}
                then 'malformed email'
            when i.identifier_type = 'phone' and i.identifier_value ~ '^\+\d?(\d)\1{7,}$'
                then 'placeholder phone (one repeated digit)'
            when i.identifier_type = 'phone' and i.identifier_value ~ '(0123456789|1234567890|9876543210)$'
                then 'placeholder phone (counting sequence)'
            when b.reason is not null then 'blocklist: ' || b.reason
            when i.identifier_type = 'anonymous_id' and coalesce(s.max_records_of_one_kind, 1) > 1
                then 'shared device: anonymousId identified as several people'
            when i.identifier_type in ('email', 'phone')
                and coalesce(s.max_records_of_one_kind, 1) > {{ var('identity_max_records_per_identifier') }}
                then 'over-merge guard: shared by '
                    || s.max_records_of_one_kind || ' records of one source'
        end as excluded_reason
    from identifiers as i
    left join sharing as s using (identifier_type, identifier_value)
    left join blocked as b using (identifier_type, identifier_value)
)

select * from final
