{#- Post-hook: refresh planner statistics of a freshly built table (Postgres does not analyze a table
    created by CREATE TABLE AS until autovacuum gets to it; without statistics the identity joins pick
    nested loops that are orders of magnitude slower). No-op for views. -#}
{% macro analyze_table() -%}
    {%- if config.get('materialized') in ('table', 'incremental', 'snapshot') -%}
        analyze {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
