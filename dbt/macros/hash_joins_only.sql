{#- Pre-hook for models whose joins all cover whole tables: no nested-loop joins in this model's
    transaction. Chains of CTEs (a CTE read twice is materialised, without statistics) and row_number()
    = 1 filters make Postgres estimate one row where there are thousands, and it then loops one side over
    the other: int_identity__identifiers on a day with earlier keys ran founders x kept keys (51M rows
    compared, 9-22 s at 10k customers, quadratic) instead of a 10 ms hash anti-join. Postgres only (SET
    LOCAL ends with the transaction); other engines hash or sort-merge equi-joins anyway. -#}
{% macro hash_joins_only() -%}
    {%- if target.type == 'postgres' -%}
        set local enable_nestloop = off
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
