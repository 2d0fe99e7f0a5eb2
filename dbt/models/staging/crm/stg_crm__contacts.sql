with source as (
    select * from {{ source('crm', 'crm_contacts') }}
),

final as (
    select
        contact_id as crm_contact_id,
        email,  -- the loaders' token (keyed hash of the normalised email; see ingestion/protection.py)
        email_encrypted,
        email_facts,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        phone,  -- token of the E.164 number
        phone_encrypted,
        phone_facts,
        lower(lifecycle_stage) as lifecycle_stage,
        email_opt_in,
        nullif(trim(timezone), '') as timezone,
        created_at,
        coalesce(updated_at, created_at) as updated_at,
        _loaded_at
    from source
)

select * from final
