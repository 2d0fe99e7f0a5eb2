{#- Models land in exactly the schema configured (staging, intermediate, marts, snapshots), not
    <target_schema>_<schema>, because analysts and the other pipeline parts use those names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
