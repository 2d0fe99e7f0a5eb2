{#- HMAC-SHA256 (hex) of a text expression with the warehouse's secret key, from built-in functions only:
    ops.privacy_keys holds the key's two HMAC pads (dagster_project/privacy/keys.py installs them; the
    analyst role cannot read that table, while views reading it run with their owner's rights). -#}
{% macro keyed_hash(expression) -%}
    encode(sha256(
        (select outer_pad from ops.privacy_keys where name = 'hash')
        || sha256((select inner_pad from ops.privacy_keys where name = 'hash') || convert_to({{ expression }}, 'UTF8'))
    ), 'hex')
{%- endmacro %}
