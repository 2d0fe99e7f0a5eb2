{#- A category name as a segment suffix: lower-case, runs of non-alphanumerics as one underscore. -#}
{% macro segment_slug(column) -%}
    trim(both '_' from regexp_replace(lower({{ column }}), '[^a-z0-9]+', '_', 'g'))
{%- endmacro %}
