{#- The relation of this model as the previous build left it, or none (first build, or a full refresh).
    Stateful identity models read it to keep keys stable across runs. They set `full_refresh: false`, so
    `dbt build --full-refresh` rebuilds everything else but keeps who-was-merged-into-whom; dbt's own
    should_full_refresh() weighs that config against the --full-refresh flag. -#}
{% macro previous_version() -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {{ return(none if should_full_refresh() else relation) }}
{%- endmacro %}
