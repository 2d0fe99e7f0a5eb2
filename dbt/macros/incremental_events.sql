{#- Incremental filter for event staging: rows loaded since the last build (with a lookback, because
    concurrent loads can commit out of _loaded_at order), never an id already present. Together with the
    in-batch dedupe this makes a re-run without new raw data a no-op and late duplicates harmless. -#}
{% macro new_events_only(id_column, lookback_hours=6) -%}
    {%- if is_incremental() %}
    where _loaded_at > (
            select coalesce(max(_loaded_at), '-infinity'::timestamptz) - interval '{{ lookback_hours }} hours'
            from {{ this }}
        )
      and {{ id_column }} not in (select {{ id_column }} from {{ this }})
    {%- endif %}
{%- endmacro %}
