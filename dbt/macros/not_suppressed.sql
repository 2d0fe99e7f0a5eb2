{#- True for rows whose customer key is not under a privacy suppression (null keys pass). -#}
{% macro not_suppressed(column) -%}
    not exists (
        select from {{ ref('int_privacy__suppressed_customers') }} as suppressed
        where suppressed.customer_key = {{ column }}
    )
{%- endmacro %}

{#- Post-hook of incremental marts: rows kept from earlier builds whose person is now suppressed go. -#}
{% macro drop_suppressed_rows(column='customer_key') -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where {{ column }} in (select customer_key from {{ ref('int_privacy__suppressed_customers') }})
    {%- endif -%}
{%- endmacro %}
