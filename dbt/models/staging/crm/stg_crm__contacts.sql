with source as (
    select * from {{ source('crm', 'crm_contacts') }}
),

final as (
    select
        contact_id as crm_contact_id,
        {{ normalize_email('email') }} as email,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        {{ phone_e164('phone') }} as phone,
        nullif(trim(phone), '') as phone_raw,
        lower(lifecycle_stage) as lifecycle_stage,
        email_opt_in,
        nullif(trim(timezone), '') as timezone,
        created_at,
        coalesce(updated_at, created_at) as updated_at,
        _loaded_at
    from source
)

select * from final
