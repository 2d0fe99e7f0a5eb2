{#- The customer_key minted for a new identity component from its founding identifier. -#}
{% macro customer_key_for(expression) -%}
    'cus_' || substr(md5({{ expression }}), 1, 16)
{%- endmacro %}
