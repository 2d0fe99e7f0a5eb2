{{ config(materialized='view') }}
{#- dim_customers for analysts: PII masked (email as first letter + domain, names as initials, phone as
    the last two digits) plus a keyed hash (HMAC-SHA256) of the email for joins without seeing it: without the key, hashing a
    guessed email finds nobody. -#}
with customers as (
    select * from {{ ref('dim_customers') }}
),

protected_values as (
    select * from {{ ref('int_identity__protected_values') }}
),

final as (
    select
        customer_key,
        email_values.value_masked as email_masked,  -- masked by the loaders (email is a token)
        customers.email as email_hash,  -- the token is the keyed hash of the normalised email
        left(first_name, 1) as first_name_initial,
        left(last_name, 1) as last_name_initial,
        phone_values.value_masked as phone_masked,
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
    left join protected_values as email_values
        on email_values.identifier_type = 'email' and email_values.identifier_value = customers.email
    left join protected_values as phone_values
        on phone_values.identifier_type = 'phone' and phone_values.identifier_value = customers.phone
)

select * from final
