{#- Customer keys of people under a suppression or deletion request: the marts leave them out, so their
    records stop flowing into profiles, ML and the ESP. Matched on keyed hashes only (the source never
    holds an identifier). -#}
with suppressed as (
    select * from {{ source('privacy', 'suppressed_identities') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

hashed as (
    select
        customer_key,
        {{ keyed_hash("identifier_type || ':' || identifier_value") }} as identifier_hash,
        {{ keyed_hash("'customer_key:' || customer_key") }} as key_hash
    from identifiers
    where customer_key is not null
),

final as (
    select distinct hashed.customer_key
    from hashed
    join suppressed
        on suppressed.identity_hash in (hashed.identifier_hash, hashed.key_hash)
)

select * from final
