{#- Overrides dbt's get_where_subquery (the `where` config of data tests). Tests of the incremental models
    in var data_tests_new_rows ({model: column}) check only the rows this invocation wrote (column >= the
    run's start: the column is the build's current_timestamp), so a daily build tests the new day, not the
    whole history. `--vars '{data_tests_full: true}'` tests every row (the scheduled full check, and what a
    --full-refresh writes is all new anyway). A test's own `where` config still applies on top. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set column = var('data_tests_new_rows', {}).get(relation.identifier) -%}
    {%- if column and not var('data_tests_full', false) -%}
        {%- set timestamp_type = 'timestamptz' if target.type == 'postgres' else dbt.type_timestamp() -%}
        {%- do conditions.append(column ~ " >= cast('" ~ run_started_at.isoformat() ~ "' as " ~ timestamp_type ~ ")") -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}
