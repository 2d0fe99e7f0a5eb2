{#- The customer_key minted for a new identity component from its founding identifier: a keyed hash, so
    that nobody without the key can compute the key of a person whose email they know. -#}
{% macro customer_key_for(expression) -%}
    'cus_' || substr({{ keyed_hash(expression) }}, 1, 16)
{%- endmacro %}
