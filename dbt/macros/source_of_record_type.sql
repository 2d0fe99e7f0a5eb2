{#- The source system a kind of identity record comes from (names as in dim_customers.source_systems). -#}
{% macro source_of_record_type(column) -%}
    case {{ column }}
        when 'crm_contact_id' then 'crm'
        when 'shop_customer_id' then 'ecommerce'
        when 'esp_profile_id' then 'email_service'
        when 'anonymous_id' then 'website'
    end
{%- endmacro %}
