{{ config(materialized='view') }}
{#- The customer_key of each source record (CRM contact, shop customer, ESP profile, web anonymousId). -#}
with identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

final as (
    select
        identifier_type as record_type,
        identifier_value as record_id,
        customer_key
    from identifiers
    where identifier_type in ('crm_contact_id', 'shop_customer_id', 'esp_profile_id', 'anonymous_id')
      and customer_key is not null
)

select * from final
