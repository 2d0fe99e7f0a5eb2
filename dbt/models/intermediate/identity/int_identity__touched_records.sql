{#- The source records whose observations may differ from what int_identity__observations stored at the
    identity chain's previous build, each with the identifiers it had then: records with staged rows loaded
    since (CRM, shop, ESP and web), CRM/shop records gone from staging, records holding an email whose
    evidence-based repair can change (their email, or a malformed email a touched valid email could
    repair, is one the touched records carry or carried), and records whose national-phone completion
    changed. Reads the stored observations and protected values without ref(): it runs before they are
    rebuilt (int_identity__protected_values depends on it). Empty on a full refresh or a first build. -#}
{{ config(indexes=[{'columns': ['record_type', 'record_id']}]) }}
{%- set stored = none if should_full_refresh() else adapter.get_relation(database=this.database, schema=this.schema, identifier='int_identity__observations') %}
{%- set stored_values = adapter.get_relation(database=this.database, schema=this.schema, identifier='int_identity__protected_values') %}
{#- The stored tables by name, not as CTEs: a CTE read several times is materialised whole (Postgres),
    while each read here is an index lookup for the touched records. -#}
{%- set string = dbt.type_string() %}
{%- set stored_observations = stored if stored is not none else
    '(select cast(null as ' ~ string ~ ') as source, cast(null as ' ~ string ~ ') as record_type, cast(null as '
    ~ string ~ ') as record_id, cast(null as ' ~ string ~ ') as identifier_type, cast(null as ' ~ string
    ~ ') as identifier_value where false)' %}
{%- set stored_values = stored_values if stored is not none and stored_values is not none else
    '(select cast(null as ' ~ string ~ ') as identifier_type, cast(null as ' ~ string ~ ') as identifier_value, cast(null as '
    ~ dbt.type_boolean() ~ ') as is_valid_email, cast(null as ' ~ string ~ ') as email_without_at, cast(null as '
    ~ string ~ ') as email_without_tld where false)' %}

with previous_build as (
    {{ identity_previous_build() }}
),

crm as (
    select * from {{ ref('stg_crm__contacts') }}
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
),

esp_events as (
    select * from {{ ref('stg_esp__events') }}
),

web_events as (
    select * from {{ ref('stg_web__events') }}
),

{#- Each staged row loaded since the previous build: its record and the email token it carries. -#}
new_rows as (
    {%- if stored is not none %}
    select 'crm_contact_id' as record_type, crm_contact_id as record_id, email, email_facts
    from crm
    cross join previous_build
    where {{ loaded_since('previous_build') }}
    union all
    select 'shop_customer_id', shop_customer_id, email, email_facts
    from shop
    cross join previous_build
    where {{ loaded_since('previous_build') }}
    union all
    select 'esp_profile_id', esp_profile_id, email, email_facts
    from esp_events
    cross join previous_build
    where esp_profile_id is not null and {{ loaded_since('previous_build') }}
    union all
    {#- Web rows by the run that staged them: stg_web__events stages late loads (lookback) in later runs. #}
    select
        case when anonymous_id is null then 'shop_customer_id' else 'anonymous_id' end,
        coalesce(anonymous_id, user_id),
        traits_email,
        traits_email_facts
    from web_events
    cross join previous_build
    where (anonymous_id is not null or user_id is not null) and {{ loaded_since('previous_build', '_staged_at') }}
    {%- else %}
    select record_type, record_id, identifier_value as email, cast(null as jsonb) as email_facts
    from {{ stored_observations }} as stored
    {%- endif %}
),

removed as (
    select stored.record_type, stored.record_id
    from {{ stored_observations }} as stored
    left join crm on crm.crm_contact_id = stored.record_id
    where stored.source = 'crm' and stored.identifier_type = 'crm_contact_id' and crm.crm_contact_id is null
    union all
    select stored.record_type, stored.record_id
    from {{ stored_observations }} as stored
    left join shop on shop.shop_customer_id = stored.record_id
    where stored.source = 'ecommerce' and stored.identifier_type = 'shop_customer_id'
      and shop.shop_customer_id is null
),

touched as (
    select record_type, record_id from new_rows
    union
    select record_type, record_id from removed
),

{#- A malformed email is repaired only when exactly one valid email of the data is it minus its "@" or
    top-level domain, so a valid email appearing or disappearing can change the repair of records it
    never touched: the emails the touched records carry or carried, the malformed emails the valid ones
    could be the repair of, the valid emails those malformed ones could be repaired to (stored repairs
    show them), and every record holding one of them. -#}
changed_emails as (
    select
        email as token,
        coalesce((email_facts ->> 'valid')::boolean, false) as is_valid,
        email_facts ->> 'without_at' as without_at,
        email_facts ->> 'without_tld' as without_tld
    from new_rows
    where email is not null
    union
    select stored.identifier_value, coalesce(v.is_valid_email, false), v.email_without_at, v.email_without_tld
    from {{ stored_observations }} as stored
    inner join touched using (record_type, record_id)
    left join {{ stored_values }} as v
        on v.identifier_type = 'email' and v.identifier_value = stored.identifier_value
    where stored.identifier_type = 'email'
),

repair_keys as (
    select without_at as token from changed_emails where is_valid and without_at is not null
    union
    select without_tld from changed_emails where is_valid and without_tld is not null
),

related_emails as (
    select token from changed_emails
    union
    select token from repair_keys
    union
    select v.identifier_value
    from {{ stored_values }} as v
    inner join repair_keys on repair_keys.token = v.email_without_at
    where v.identifier_type = 'email' and v.is_valid_email
    union
    select v.identifier_value
    from {{ stored_values }} as v
    inner join repair_keys on repair_keys.token = v.email_without_tld
    where v.identifier_type = 'email' and v.is_valid_email
),

repair_holders as (
    select stored.record_type, stored.record_id
    from {{ stored_observations }} as stored
    inner join related_emails on related_emails.token = stored.identifier_value
    where stored.identifier_type = 'email'
      and {{ 'true' if var('identity_repair_emails_from_evidence') else 'false' }}
),

{#- A bare national phone's completion depends on every fully-qualified phone of CRM and shop: the
    records whose completion now differs from the extra phone their stored observations carry. -#}
phone_records as (
    {{ identity_phone_records('crm', 'shop') }}
),

completions as (
    {{ national_phone_completions('phone_records', 'phone_records') }}
),

completion_changes as (
    select bare.record_type, bare.record_id
    from phone_records as bare
    left join completions
        on completions.source = bare.source
        and completions.record_type = bare.record_type
        and completions.record_id = bare.record_id
    left join {{ stored_observations }} as stored
        on stored.source = bare.source
        and stored.record_type = bare.record_type
        and stored.record_id = bare.record_id
        and stored.identifier_type = 'phone'
        and stored.identifier_value <> bare.phone
    where {{ 'true' if stored is not none else 'false' }}
      and not coalesce((bare.phone_facts ->> 'international')::boolean, false)
      and stored.identifier_value is distinct from
        case when completions.phone <> bare.phone then completions.phone end
),

records as (
    select record_type, record_id from touched
    union
    select record_type, record_id from repair_holders
    union
    select record_type, record_id from completion_changes
),

final as (
    select records.record_type, records.record_id, stored.identifier_type, stored.identifier_value
    from records
    left join {{ stored_observations }} as stored using (record_type, record_id)
)

select * from final
