{{
    config(
        materialized='incremental',
        unique_key='customer_key',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_key'], 'unique': True}],
        post_hook=[
            "{{ drop_suppressed_rows() }}",
            "{{ drop_rows_gone_from(ref('int_identity__customers'), 'customer_key') }}",
        ],
    )
}}
{#- The unified customer profile: one row per resolved person who is known to at least one system by a
    record or an email (anonymous-only web visitors are not customers). Incremental by customer: a build
    rewrites the keys in int_customers__touched_keys and those whose freshness check (last_updated_at
    against the as-of instant) changed level; retired keys and suppressed people are deleted by the
    post-hooks, so a build equals a full rebuild. -#}
-- depends_on: {{ ref('int_customers__touched_keys') }}
with as_of as (
    select * from {{ ref('int_calendar__as_of') }}
),

{% if is_incremental() -%}
{#- A table from before the build stamps has no _as_of_at: every freshness level counts as changed. -#}
{%- set stamped = '_as_of_at' in adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
previous_build as (
    select {{ 'max(_as_of_at)' if stamped else 'cast(null as ' ~ dbt.type_timestamp() ~ ')' }} as as_of_at
    from {{ this }}
),

scope as (
    select customer_key from {{ ref('int_customers__touched_keys') }}
    union
    select stored.customer_key
    from {{ this }} as stored
    cross join previous_build
    cross join as_of
    where {{ crossed_window_edge('stored.last_updated_at', 'previous_build', 'as_of', var('data_quality_fresh_days')) }}
       or {{ crossed_window_edge('stored.last_updated_at', 'previous_build', 'as_of', var('data_quality_stale_days')) }}
    union
    {# People without a row (no longer suppressed, say). #}
    select known.customer_key
    from {{ ref('int_identity__customers') }} as known
    where not exists (select 1 from {{ this }} as stored where stored.customer_key = known.customer_key)
),

{% endif -%}
identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

record_keys as (
    select * from {{ ref('int_identity__record_keys') }}
),

scoped_record_keys as (
    select * from record_keys where {{ in_scope('customer_key') }}
),

survivorship as (
    select * from {{ ref('int_customers__survivorship') }} where {{ in_scope('customer_key') }}
),

checks as (
    select * from {{ ref('int_identity__identifier_checks') }}
),

protected_values as (
    select * from {{ ref('int_identity__protected_values') }}
),

crm as (
    select * from {{ ref('stg_crm__contacts') }}
),

shop as (
    select * from {{ ref('stg_shop__customers') }}
),

orders as (
    select * from {{ ref('fct_orders') }} where {{ in_scope('customer_key') }}
),

email_events as (
    select * from {{ ref('fct_email_events') }} where {{ in_scope('customer_key') }}
),

sessions as (
    select * from {{ ref('fct_web_sessions') }} where {{ in_scope('customer_key') }}
),

customers as (
    select * from {{ ref('int_identity__customers') }} where {{ in_scope('customer_key') }}
),

profile as (
    select
        customer_key,
        {%- for field in ['email', 'first_name', 'last_name', 'phone', 'timezone', 'consent_sources'] %}
        max(value) filter (where field = '{{ field }}') as {{ field }},
        max(value_source) filter (where field = '{{ field }}') as {{ field }}_source,
        {%- endfor %}
        max(value_updated_at) as profile_updated_at
    from survivorship
    group by 1
),

source_records as (
    select
        record_keys.customer_key,
        string_agg(distinct
            {{ source_of_record_type('record_keys.record_type') }}, ',' order by
            {{ source_of_record_type('record_keys.record_type') }}) as source_systems,
        count(distinct
            {{ source_of_record_type('record_keys.record_type') }}) as source_system_count,
        (array_agg(crm.crm_contact_id order by crm.updated_at desc, crm.crm_contact_id)
            filter (where crm.crm_contact_id is not null))[1] as crm_contact_id,
        min(shop.customer_id) as shop_customer_id,
        min(record_keys.record_id) filter (where record_keys.record_type = 'esp_profile_id') as esp_profile_id,
        least(min(crm.created_at), min(shop.created_at)) as registered_at,
        greatest(max(crm.updated_at), max(shop.updated_at)) as source_updated_at
    from scoped_record_keys as record_keys
    left join crm
        on record_keys.record_type = 'crm_contact_id' and crm.crm_contact_id = record_keys.record_id
    left join shop
        on record_keys.record_type = 'shop_customer_id' and shop.shop_customer_id = record_keys.record_id
    group by 1
),

{#- Source diversity counts against the systems the data has: in a shop-only build one system is all
    there is to be known to. -#}
systems_in_data as (
    select greatest(count(distinct {{ source_of_record_type('record_type') }}), 1) as system_count
    from record_keys
),

{#- A test mailbox is blocked from matching (it has no key), so look for it on the person's records. -#}
test_accounts as (
    select distinct record_keys.customer_key
    from scoped_record_keys as record_keys
    inner join {{ ref('int_identity__observations') }} as observations using (record_type, record_id)
    inner join checks
        on checks.identifier_type = observations.identifier_type
        and checks.identifier_value = observations.identifier_value
    where checks.is_test_identifier
),

{#- The last time mail reached the person (delivered, or opened/clicked, machine opens included): soft
    bounces after it form the current streak. -#}
last_reached as (
    select customer_key, max(event_at) as last_reached_at
    from email_events
    where customer_key is not null
      and event_type in ('delivered', 'open', 'click')
    group by 1
),

email_status as (
    select
        email_events.customer_key,
        min(email_events.event_at) as first_email_event_at,
        bool_or(email_events.event_type = 'spam_complaint') as has_complained,
        bool_or(
            email_events.event_type = 'bounce' and coalesce(email_events.bounce_type, 'hard') = 'hard'
        ) as has_hard_bounced,
        count(*) filter (
            where email_events.event_type = 'bounce'
              and email_events.bounce_type = 'soft'
              and email_events.event_at > coalesce(last_reached.last_reached_at, '-infinity'::timestamptz)
        ) as consecutive_soft_bounces,
        bool_or(email_events.event_type = 'unsubscribe') as has_unsubscribed,
        max(email_events.event_at) filter (
            where email_events.event_type in ('open', 'click') and not email_events.is_machine_open
        ) as last_email_engagement_at
    from email_events
    left join last_reached using (customer_key)
    where email_events.customer_key is not null
    group by 1
),

order_summary as (
    select
        customer_key,
        max(ordered_at) as last_order_at,
        count(*) as order_count,
        sum(net_revenue) as lifetime_value
    from orders
    where customer_key is not null
      and ordered_at <= (select as_of_at from as_of)
    group by 1
),

web_summary as (
    select customer_key, max(ended_at) as last_web_at
    from sessions
    where customer_key is not null
    group by 1
),

joined as (
    select
        customers.customer_key,
        profile.email,
        email_values.value_encrypted as email_encrypted,
        profile.email_source,
        profile.first_name,
        profile.first_name_source,
        profile.last_name,
        profile.last_name_source,
        profile.phone,
        phone_values.value_encrypted as phone_encrypted,
        profile.phone_source,
        case when profile.timezone in (select name from pg_timezone_names) then profile.timezone end as timezone,
        case when profile.timezone in (select name from pg_timezone_names) then profile.timezone_source end
            as timezone_source,
        profile.consent_sources,
        coalesce(source_records.registered_at, email_status.first_email_event_at) as registered_at,
        greatest(
            order_summary.last_order_at, email_status.last_email_engagement_at, web_summary.last_web_at
        ) as last_activity_at,
        case
            when email_status.has_complained then 'complained'
            when email_status.has_hard_bounced
                or email_status.consecutive_soft_bounces >= {{ var('soft_bounce_suppression_streak') }}
                then 'bounced'
            when email_status.has_unsubscribed then 'unsubscribed'
            when profile.consent_sources is not null then 'subscribed'
            else 'never_subscribed'
        end as subscription_status,
        coalesce(email_status.consecutive_soft_bounces, 0) as consecutive_soft_bounces,
        coalesce(
            profile.email is not null
            and email_values.is_valid_email
            and (email_checks.excluded_reason is null or email_checks.excluded_reason like 'over-merge%'),
            false
        ) as is_email_valid,
        test_accounts.customer_key is not null as is_test_account,
        source_records.source_systems,
        coalesce(source_records.source_system_count, 0) as source_system_count,
        source_records.esp_profile_id,
        source_records.shop_customer_id,
        source_records.crm_contact_id,
        coalesce(order_summary.lifetime_value, 0)::numeric(14, 2) as lifetime_value,
        coalesce(order_summary.order_count, 0) as order_count,
        systems_in_data.system_count as systems_in_data,
        greatest(
            profile.profile_updated_at, source_records.source_updated_at,
            order_summary.last_order_at, email_status.last_email_engagement_at, web_summary.last_web_at
        ) as last_updated_at,
        as_of.as_of_at
    from customers
    cross join as_of
    cross join systems_in_data
    left join profile using (customer_key)
    left join source_records using (customer_key)
    left join email_status using (customer_key)
    left join order_summary using (customer_key)
    left join web_summary using (customer_key)
    left join test_accounts using (customer_key)
    left join checks as email_checks
        on email_checks.identifier_type = 'email' and email_checks.identifier_value = profile.email
    left join protected_values as email_values
        on email_values.identifier_type = 'email' and email_values.identifier_value = profile.email
    left join protected_values as phone_values
        on phone_values.identifier_type = 'phone' and phone_values.identifier_value = profile.phone
),

{#- The seed's data-quality score: four checks worth 0, 0.5 or 1 each, averaged (see the
    dim_customers__data_quality_level doc for what each level means). -#}
scored as (
    select
        *,
        (
            case when is_email_valid then 1 else 0 end
            + case
                when (
                    (email is not null)::int + (first_name is not null)::int + (last_name is not null)::int
                ) / 3.0 >= 0.8 then 1
                when (
                    (email is not null)::int + (first_name is not null)::int + (last_name is not null)::int
                ) / 3.0 >= 0.6 then 0.5
                else 0
            end
            + case
                when last_updated_at >= as_of_at - interval '{{ var("data_quality_fresh_days") }} days' then 1
                when last_updated_at >= as_of_at - interval '{{ var("data_quality_stale_days") }} days' then 0.5
                else 0
            end
            + case
                when source_system_count >= least(3, systems_in_data) then 1
                when source_system_count >= least(2, systems_in_data) then 0.5
                else 0
            end
        ) / 4.0 as data_quality_score
    from joined
),

final as (
    select
        customer_key,
        email,
        email_encrypted,
        email_source,
        first_name,
        first_name_source,
        last_name,
        last_name_source,
        phone,
        phone_encrypted,
        phone_source,
        timezone,
        timezone_source,
        registered_at,
        last_activity_at,
        subscription_status,
        consecutive_soft_bounces,
        consent_sources,
        is_email_valid,
        is_test_account,
        subscription_status = 'subscribed' and is_email_valid and not is_test_account as is_contactable,
        source_systems,
        data_quality_score::numeric(4, 3) as data_quality_score,
        case
            when data_quality_score >= 0.8 then 'HIGH'
            when data_quality_score >= 0.6 then 'MEDIUM'
            when data_quality_score >= 0.4 or is_email_valid or order_count > 0 then 'LOW'
            else 'INVALID'
        end as data_quality_level,
        esp_profile_id,
        shop_customer_id,
        crm_contact_id,
        lifetime_value,
        last_updated_at,
        as_of_at as _as_of_at,
        current_timestamp as _built_at
    from scored
)

select * from final
where {{ not_suppressed('final.customer_key') }}
