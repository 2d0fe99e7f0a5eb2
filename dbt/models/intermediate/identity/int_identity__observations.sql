{#- Every (source record, identifier) pair seen in the sources: the raw material of identity resolution.
    A record is a CRM contact, a shop customer, an ESP profile or a web anonymousId (with the userId and
    identify-email it was seen with). Incremental by record: a pre-hook deletes the rows of the records in
    int_identity__touched_records, the build appends what their staged rows give now. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ drop_touched_identity_rows('record') }}",
        indexes=[{'columns': ['record_type', 'record_id']}, {'columns': ['identifier_type', 'identifier_value']}],
    )
}}
-- depends_on: {{ ref('int_identity__touched_records') }}

with crm as (
    select * from {{ ref('stg_crm__contacts') }}
    where {{ identity_record_touched("'crm_contact_id'", 'crm_contact_id') }}
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
    where {{ identity_record_touched("'shop_customer_id'", 'shop_customer_id') }}
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
      and {{ identity_record_touched("'esp_profile_id'", 'esp_profile_id') }}
    group by 1, 2
),

{#- Two selects when incremental, so that each lookup uses its index (an OR of both would scan). -#}
web_events as (
    {%- if is_incremental() %}
    select * from {{ ref('stg_web__events') }}
    where {{ identity_record_touched("'anonymous_id'", 'anonymous_id') }}
    union all
    select * from {{ ref('stg_web__events') }}
    where anonymous_id is null and {{ identity_record_touched("'shop_customer_id'", 'user_id') }}
    {%- else %}
    select * from {{ ref('stg_web__events') }}
    {%- endif %}
),

web as (
    select
        coalesce(anonymous_id, 'user:' || user_id) as record_key,
        anonymous_id,
        user_id,
        traits_email,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at
    from web_events
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
    from web_events
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
    {{ identity_phone_records('crm', 'shop') }}
),

{#- The fully-qualified numbers a bare one may be: from every CRM contact and shop customer. -#}
all_phone_records as (
    {%- if is_incremental() %}
    {{ identity_phone_records(ref('stg_crm__contacts'), ref('stg_shop__customers')) }}
    {%- else %}
    select * from phone_records
    {%- endif %}
),

national_phone_completions as (
    {{ national_phone_completions('phone_records', 'all_phone_records') }}
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

malformed_emails as (
    select emails.email, protected_values.has_at
    from emails
    inner join protected_values
        on protected_values.identifier_type = 'email' and protected_values.identifier_value = emails.email
    where {{ 'true' if var('identity_repair_emails_from_evidence') else 'false' }}
      and not protected_values.is_valid_email
),

{#- Equality joins on derived keys (the valid email without its "@", without its top-level domain), not a
    pairwise comparison: the OR of both readings in one join condition forced a nested loop. Tokens: the
    loaders computed the without-"@" / without-TLD tokens. -#}
repair_candidates as (
    select malformed.email as malformed_email, valid.identifier_value as valid_email
    from malformed_emails as malformed
    inner join protected_values as valid
        on valid.identifier_type = 'email' and valid.email_without_at = malformed.email
    where valid.is_valid_email
    union
    select malformed.email, valid.identifier_value
    from malformed_emails as malformed
    inner join protected_values as valid
        on valid.identifier_type = 'email' and valid.email_without_tld = malformed.email
    where valid.is_valid_email and malformed.has_at
),

{#- Evidence: the valid email is one of the data's, here or (incremental) in a record not rebuilt now
    (the pre-hook left only those in the stored table). -#}
evidenced_candidates as (
    select candidates.*
    from repair_candidates as candidates
    where candidates.valid_email in (select email from emails)
    {%- if is_incremental() %}
       or exists (
           select 1 from {{ this }} as stored
           where stored.identifier_type = 'email' and stored.identifier_value = candidates.valid_email
       )
    {%- endif %}
),

email_repairs as (
    select
        malformed_email,
        min(valid_email) as repaired_email
    from evidenced_candidates
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
        min(o.observed_at) as observed_at,
        {{ dbt.current_timestamp() }} as _built_at
    from observations as o
    left join email_repairs as r
        on o.identifier_type = 'email'
        and o.identifier_value = r.malformed_email
    where o.identifier_value is not null and o.record_id is not null
    group by 1, 2, 3, 4, 5
)

select * from final
