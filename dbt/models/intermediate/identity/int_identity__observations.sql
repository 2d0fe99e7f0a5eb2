{#- Every (source record, identifier) pair seen in the sources: the raw material of identity resolution.
    A record is a CRM contact, a shop customer, an ESP profile or a web anonymousId (with the userId and
    identify-email it was seen with). -#}
with crm as (
    select * from {{ ref('stg_crm__contacts') }}
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
),

protected_values as (
    select * from {{ ref('int_identity__protected_values') }}
),

esp as (
    select
        esp_profile_id,
        email,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at
    from {{ ref('stg_esp__events') }}
    where esp_profile_id is not null
    group by 1, 2
),

web as (
    select
        coalesce(anonymous_id, 'user:' || user_id) as record_key,
        anonymous_id,
        user_id,
        traits_email,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at
    from {{ ref('stg_web__events') }}
    where anonymous_id is not null or user_id is not null
    group by 1, 2, 3, 4
),

{#- Optional probabilistic link: the IP addresses an anonymousId browsed from (guarded in
    int_identity__identifier_checks; var identity_link_by_ip). -#}
web_ips as (
    select
        anonymous_id,
        ip,
        min(event_at) as first_seen_at
    from {{ ref('stg_web__events') }}
    where anonymous_id is not null
      and ip is not null
      and {{ 'true' if var('identity_link_by_ip') else 'false' }}
    group by 1, 2
),

{#- A phone written without a country code (a bare national number) got the default calling code at
    load, which is only a guess. When the data holds exactly one fully-qualified number (written with
    "+" or "00") that is that national number behind some calling code, the record also carries that number
    (var identity_complete_national_phones). Two or more candidates: ambiguous, the guess stays alone. -#}
{#- Phones are tokens: how a number was written and its national-number tokens come from the loaders
    (phone_facts: international = written with "+" or "00"; national = token of a bare 10-digit number;
    national_numbers = tokens of an international number without 1, 2 or 3 calling-code digits). -#}
phone_records as (
    select 'crm' as source, 'crm_contact_id' as record_type, crm_contact_id as record_id,
        phone, phone_facts, created_at as observed_at
    from crm
    where phone is not null
    union all
    select 'ecommerce', 'shop_customer_id', shop_customer_id, phone, phone_facts, created_at
    from shop
    where phone is not null
),

international_phones as (
    select distinct
        phone,
        jsonb_array_elements_text(phone_facts -> 'national_numbers') as national_number
    from phone_records
    where coalesce((phone_facts ->> 'international')::boolean, false)
),

national_phone_completions as (
    select
        bare.source,
        bare.record_type,
        bare.record_id,
        min(international.phone) as phone,
        min(bare.observed_at) as observed_at
    from phone_records as bare
    inner join international_phones as international
        on international.national_number = bare.phone_facts ->> 'national'
    where {{ 'true' if var('identity_complete_national_phones') else 'false' }}
      and not coalesce((bare.phone_facts ->> 'international')::boolean, false)
    group by 1, 2, 3
    having count(distinct international.phone) = 1
),

observations as (
    {%- for identifier in ['crm_contact_id', 'email', 'phone'] %}
    select
        'crm' as source,
        'crm_contact_id' as record_type,
        crm_contact_id as record_id,
        '{{ identifier }}' as identifier_type,
        {{ identifier }} as identifier_value,
        created_at as observed_at
    from crm
    union all
    {%- endfor %}
    {%- for identifier in ['shop_customer_id', 'email', 'phone'] %}
    select
        'ecommerce',
        'shop_customer_id',
        shop_customer_id,
        '{{ identifier }}',
        {{ identifier }},
        created_at
    from shop
    union all
    {%- endfor %}
    {%- for identifier in ['esp_profile_id', 'email'] %}
    select
        'email_service',
        'esp_profile_id',
        esp_profile_id,
        '{{ identifier }}',
        {{ identifier }},
        first_seen_at
    from esp
    union all
    {%- endfor %}
    {%- for identifier, column in [('anonymous_id', 'anonymous_id'), ('shop_customer_id', 'user_id'), ('email', 'traits_email')] %}
    select
        'website',
        case when anonymous_id is null then 'shop_customer_id' else 'anonymous_id' end,
        coalesce(anonymous_id, user_id),
        '{{ identifier }}',
        {{ column }},
        first_seen_at
    from web
    union all
    {%- endfor %}
    select 'website', 'anonymous_id', anonymous_id, 'ip', ip, first_seen_at
    from web_ips
    union all
    select source, record_type, record_id, 'phone', phone, observed_at
    from national_phone_completions
),

{#- A malformed email (excluded from matching) that is exactly one valid email of the data with its "@" or
    its top-level domain lost ("annaacme.io", "anna@acme") is read as that email; two or more such
    valid emails: ambiguous, kept as it is (var identity_repair_emails_from_evidence). Staging repairs these
    for well-known providers only, where no evidence is needed. -#}
emails as (
    select distinct identifier_value as email
    from observations
    where identifier_type = 'email' and identifier_value is not null
),

{#- Equality joins on derived keys (the valid email without its "@", without its top-level domain), not a
    pairwise comparison: the OR of both readings in one join condition forced a nested loop. -#}
valid_emails as (  -- tokens: the loaders computed the without-"@" / without-TLD tokens
    select
        emails.email,
        protected_values.email_without_at,
        protected_values.email_without_tld
    from emails
    inner join protected_values
        on protected_values.identifier_type = 'email' and protected_values.identifier_value = emails.email
    where {{ 'true' if var('identity_repair_emails_from_evidence') else 'false' }}
      and protected_values.is_valid_email
),

malformed_emails as (
    select emails.email, protected_values.has_at
    from emails
    inner join protected_values
        on protected_values.identifier_type = 'email' and protected_values.identifier_value = emails.email
    where {{ 'true' if var('identity_repair_emails_from_evidence') else 'false' }}
      and not protected_values.is_valid_email
),

repair_candidates as (
    select malformed.email as malformed_email, valid.email as valid_email
    from malformed_emails as malformed
    inner join valid_emails as valid on valid.email_without_at = malformed.email
    union
    select malformed.email, valid.email
    from malformed_emails as malformed
    inner join valid_emails as valid on valid.email_without_tld = malformed.email
    where malformed.has_at
),

email_repairs as (
    select
        malformed_email,
        min(valid_email) as repaired_email
    from repair_candidates
    group by 1
    having count(distinct valid_email) = 1
),

final as (
    select
        o.source,
        o.record_type,
        o.record_id,
        o.identifier_type,
        coalesce(r.repaired_email, o.identifier_value) as identifier_value,
        min(o.observed_at) as observed_at
    from observations as o
    left join email_repairs as r
        on o.identifier_type = 'email'
        and o.identifier_value = r.malformed_email
    where o.identifier_value is not null and o.record_id is not null
    group by 1, 2, 3, 4, 5
)

select * from final
