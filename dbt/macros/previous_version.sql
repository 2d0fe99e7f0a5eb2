{#- The relation of this model as the previous build left it, or none (first build, --full-refresh).
    Stateful identity models read it to keep keys stable across runs. -#}
{% macro previous_version() -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {{ return(none if flags.FULL_REFRESH else relation) }}
{%- endmacro %}
