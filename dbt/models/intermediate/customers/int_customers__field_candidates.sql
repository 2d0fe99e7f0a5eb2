{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_key']}],
        pre_hook=["{{ drop_touched_rows() }}"],
        post_hook=["{{ drop_rows_gone_from(ref('int_identity__record_keys'), 'customer_key') }}"],
    )
}}
{#- Every value each source offers for each profile field, with its source and source updated_at:
    the input of survivorship. is_usable is false for junk (malformed or blocked) emails and phones.
    Incremental by customer: a build replaces the rows of the keys in int_customers__touched_keys (the
    pre-hook deletes them, the build appends what their records offer now); keys gone go (post-hook). -#}
-- depends_on: {{ ref('int_customers__touched_keys') }}
with record_keys as (
    select * from {{ ref('int_identity__record_keys') }} where {{ touched_only('customer_key') }}
),

checks as (
    select * from {{ ref('int_identity__identifier_checks') }}
),

crm as (
    select * from {{ ref('stg_crm__contacts') }}
    where crm_contact_id in (select record_id from record_keys where record_type = 'crm_contact_id')
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
    where shop_customer_id in (select record_id from record_keys where record_type = 'shop_customer_id')
),

esp_profiles as (
    select
        esp_profile_id,
        (array_agg(email order by event_at desc) filter (where email is not null))[1] as email,
        max(event_at) as last_seen_at
    from {{ ref('stg_esp__events') }}
    where esp_profile_id in (select record_id from record_keys where record_type = 'esp_profile_id')
    group by 1
),

web_identities as (
    select
        coalesce(anonymous_id, user_id) as record_id,
        case when anonymous_id is null then 'shop_customer_id' else 'anonymous_id' end as record_type,
        (array_agg(traits_email order by event_at desc) filter (where traits_email is not null))[1] as email,
        (array_agg(traits_first_name order by event_at desc)
            filter (where traits_first_name is not null))[1] as first_name,
        (array_agg(traits_last_name order by event_at desc)
            filter (where traits_last_name is not null))[1] as last_name,
        (array_agg(timezone order by event_at desc) filter (where timezone is not null))[1] as timezone,
        max(event_at) as last_seen_at
    from {{ ref('stg_web__events') }}
    where anonymous_id in (select record_id from record_keys where record_type = 'anonymous_id')
       or (anonymous_id is null and user_id in (select record_id from record_keys where record_type = 'shop_customer_id'))
    group by 1, 2
),

candidates as (
    {%- for field in ['email', 'first_name', 'last_name', 'phone', 'timezone'] %}
    select 'crm_contact_id' as record_type, crm_contact_id as record_id, 'crm' as source,
        '{{ field }}' as field, {{ field }}::text as value, updated_at
    from crm
    union all
    {%- endfor %}
    select 'crm_contact_id', crm_contact_id, 'crm', 'consent_sources', 'crm', updated_at
    from crm where email_opt_in
    union all
    {%- for field in ['email', 'first_name', 'last_name', 'phone'] %}
    select 'shop_customer_id', shop_customer_id, 'ecommerce', '{{ field }}', {{ field }}::text, updated_at
    from shop
    union all
    {%- endfor %}
    select 'shop_customer_id', shop_customer_id, 'ecommerce', 'consent_sources', 'ecommerce', updated_at
    from shop where accepts_marketing
    union all
    select 'esp_profile_id', esp_profile_id, 'email_service', 'email', email, last_seen_at
    from esp_profiles
    union all
    select 'esp_profile_id', esp_profile_id, 'email_service', 'consent_sources', 'email_service', last_seen_at
    from esp_profiles
    {%- for field in ['email', 'first_name', 'last_name', 'timezone'] %}
    union all
    select record_type, record_id, 'website', '{{ field }}', {{ field }}::text, last_seen_at
    from web_identities
    {%- endfor %}
),

final as (
    select
        record_keys.customer_key,
        candidates.field,
        candidates.value,
        candidates.source,
        candidates.record_type,
        candidates.record_id,
        candidates.updated_at,
        case
            when candidates.field in ('email', 'phone')
                then coalesce(checks.excluded_reason is null or checks.excluded_reason like 'over-merge%', false)
            else true
        end as is_usable,
        current_timestamp as _built_at
    from candidates
    inner join record_keys using (record_type, record_id)
    left join checks
        on checks.identifier_type = candidates.field
        and checks.identifier_value = candidates.value
    where candidates.value is not null
)

select * from final
