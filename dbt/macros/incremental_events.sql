{#- Incremental filter for event staging: rows of `source_relation` loaded since the last build (with a
    lookback, because concurrent loads can commit out of _loaded_at order), never an id already present
    (an anti-join on the staged id's unique index; the relation qualifies the outer id). Together with
    the in-batch dedupe this makes a re-run without new raw data a no-op and late duplicates harmless. -#}
{% macro new_events_only(source_relation, id_column, lookback_hours=6) -%}
    {%- if is_incremental() %}
    where _loaded_at > (
            select coalesce(max(_loaded_at), '-infinity'::timestamptz) - interval '{{ lookback_hours }} hours'
            from {{ this }}
        )
      and not exists (
            select 1 from {{ this }} as staged
            where staged.{{ id_column }} = {{ source_relation.identifier }}.{{ id_column }}
        )
    {%- endif %}
{%- endmacro %}
