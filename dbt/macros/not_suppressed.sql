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

{#- Post-hook of incremental models: rows kept from earlier builds whose key is gone from the source
    relation (a row quarantined after it was built) go, as a full rebuild would not have them. -#}
{% macro drop_rows_gone_from(relation, column) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as kept
    where not exists (select 1 from {{ relation }} as source where source.{{ column }} = kept.{{ column }})
    {%- endif -%}
{%- endmacro %}
