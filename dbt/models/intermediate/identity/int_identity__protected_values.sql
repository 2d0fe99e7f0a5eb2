{#- One row per email or phone token of the sources: what the loaders computed from the plaintext
    (ingestion/protection.py), since SQL only ever sees tokens. Any of a token's ciphertexts decrypts
    to the same normalised value. -#}
{#- Built after int_identity__touched_records, which reads this table's previous version. -#}
-- depends_on: {{ ref('int_identity__touched_records') }}
{{ config(indexes=[{'columns': ['identifier_type', 'identifier_value']}]) }}
with crm as (
    select * from {{ ref('stg_crm__contacts') }}
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
),

esp as (
    select * from {{ ref('stg_esp__events') }}
),

web as (
    select * from {{ ref('stg_web__events') }}
),

values_seen as (
    select 'email' as identifier_type, email as identifier_value, email_encrypted as value_encrypted,
        email_facts as facts
    from crm where email is not null
    union all
    select 'phone', phone, phone_encrypted, phone_facts from crm where phone is not null
    union all
    select 'email', email, email_encrypted, email_facts from shop where email is not null
    union all
    select 'phone', phone, phone_encrypted, phone_facts from shop where phone is not null
    union all
    select distinct 'email', email, email_encrypted, email_facts from esp where email is not null
    union all
    select distinct 'email', traits_email, traits_email_encrypted, traits_email_facts
    from web where traits_email is not null
),

final as (
    select
        identifier_type,
        identifier_value,
        min(value_encrypted) as value_encrypted,
        min(facts ->> 'masked') as value_masked,
        coalesce(bool_or((facts ->> 'valid')::boolean), false) as is_valid_email,
        coalesce(bool_or((facts ->> 'placeholder')::boolean), false) as is_placeholder_email,
        coalesce(bool_or((facts ->> 'has_at')::boolean), false) as has_at,
        min(facts ->> 'without_at') as email_without_at,
        min(facts ->> 'without_tld') as email_without_tld,
        min(facts ->> 'local_part') as email_local_part,
        min(facts ->> 'domain') as email_domain,
        min(facts ->> 'placeholder_reason') as phone_placeholder_reason
    from values_seen
    group by 1, 2
)

select * from final
