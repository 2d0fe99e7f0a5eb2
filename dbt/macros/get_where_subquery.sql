{#- Overrides dbt's get_where_subquery (the `where` config of data tests). Tests of the incremental models
    in var data_tests_new_rows ({model: column}) check only the rows this invocation wrote (column >= the
    run's start: the column is the build's current_timestamp), so a daily build tests the new day, not the
    whole history. Uniqueness tests (unique, unique_combination_of_columns) check the new rows against the
    whole table: they read every row sharing a key with a new row, so a new row duplicating an old one
    fails. `--vars '{data_tests_full: true}'` tests every row (the scheduled full check, and what a
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
        {%- set new_rows = column ~ " >= cast('" ~ run_started_at.isoformat() ~ "' as " ~ timestamp_type ~ ")" -%}
        {%- set keys = uniqueness_test_keys() -%}
        {%- if keys -%}
            {%- set key_list = keys | join(', ') -%}
            {%- set key_tuple = key_list if keys | length == 1 else '(' ~ key_list ~ ')' -%}
            {%- do conditions.append(key_tuple ~ ' in (select ' ~ key_list ~ ' from ' ~ relation ~ ' where ' ~ new_rows ~ ')') -%}
        {%- else -%}
            {%- do conditions.append(new_rows) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The key columns of the uniqueness test being compiled (none for other tests). -#}
{% macro uniqueness_test_keys() -%}
    {%- set test = (model.get('test_metadata') if model is mapping else none) or {} -%}
    {%- set kwargs = test.get('kwargs', {}) -%}
    {%- if test.get('name') == 'unique' -%}
        {{ return([kwargs.get('column_name')]) }}
    {%- elif test.get('name') == 'unique_combination_of_columns' -%}
        {{ return(kwargs.get('combination_of_columns', [])) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}
