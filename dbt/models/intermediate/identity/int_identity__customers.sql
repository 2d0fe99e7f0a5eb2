{{ config(materialized='view') }}
{#- The customer keys of known people: components holding a CRM contact, a shop customer, an ESP profile
    or an email. Components of anonymous web visitors only are not customers. -#}
with identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

final as (
    select distinct customer_key
    from identifiers
    where customer_key is not null
      and identifier_type in ('crm_contact_id', 'shop_customer_id', 'esp_profile_id', 'email')
)

select * from final
