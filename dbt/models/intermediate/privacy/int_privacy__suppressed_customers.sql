{#- Customer keys of people under a suppression or deletion request: the marts leave them out, so their
    records stop flowing into profiles, ML and the ESP. Matched on keyed hashes only (the source never
    holds an identifier); equi-joins, so that with no request nothing is hashed at all. -#}
with suppressed as (
    select * from {{ source('privacy', 'suppressed_identities') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

by_identifier as (
    select identifiers.customer_key
    from identifiers
    inner join suppressed
        on suppressed.identity_hash = {{ keyed_hash("identifiers.identifier_type || ':' || identifiers.identifier_value") }}
    where identifiers.customer_key is not null
),

by_key as (
    select keys.customer_key
    from (select distinct customer_key from identifiers where customer_key is not null) as keys
    inner join suppressed
        on suppressed.identity_hash = {{ keyed_hash("'customer_key:' || keys.customer_key") }}
),

final as (
    select customer_key from by_identifier
    union
    select customer_key from by_key
)

select * from final
