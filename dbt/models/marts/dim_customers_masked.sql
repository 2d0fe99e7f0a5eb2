{{ config(materialized='view') }}
{#- dim_customers for analysts: PII masked (email as first letter + domain, names as initials, phone as
    the last two digits) plus a keyed hash (HMAC-SHA256) of the email for joins without seeing it: without the key, hashing a
    guessed email finds nobody. -#}
with customers as (
    select * from {{ ref('dim_customers') }}
),

final as (
    select
        customer_key,
        case when email is not null
            then left(email, 1) || '***@' || split_part(email, '@', 2) end as email_masked,
        {{ keyed_hash('email') }} as email_hash,
        left(first_name, 1) as first_name_initial,
        left(last_name, 1) as last_name_initial,
        case when phone is not null then '***' || right(phone, 2) end as phone_masked,
        timezone,
        registered_at,
        last_activity_at,
        subscription_status,
        consent_sources,
        is_email_valid,
        is_test_account,
        is_contactable,
        source_systems,
        data_quality_score,
        data_quality_level,
        lifetime_value
    from customers
)

select * from final
