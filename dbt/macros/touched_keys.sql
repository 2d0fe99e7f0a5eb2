{#- The build a set of incremental models last completed: one row with, per stamp column (`_built_at`
    -> built_at), the earliest of the models' newest stamps, so a model whose build failed is caught up by
    the next run. Nulls when a model is missing or unstamped (first build, a full refresh, a warehouse from
    before the stamps): then everything counts as touched. Read without ref(): the models are downstream of
    the one asking, which must see their previous build, not this one. -#}
{% macro previous_build(relations, columns=['_built_at']) -%}
    {%- set stamped = [] -%}
    {%- if execute and not should_full_refresh() -%}
        {%- for schema, name in relations -%}
            {%- set relation = adapter.get_relation(database=this.database, schema=schema, identifier=name) -%}
            {%- if relation is not none and relation.type == 'table'
                and '_built_at' in adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
                {%- do stamped.append(relation) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif %}
    select
    {%- for column in columns %}
        {% if stamped | length == relations | length -%}
        least({% for relation in stamped %}(select max({{ column }}) from {{ relation }}){{ ', ' if not loop.last }}{% endfor %})
        {%- else -%}
        cast(null as {{ dbt.type_timestamp() }})
        {%- endif %} as {{ column.lstrip('_') }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The customer marts' previous build (built_at, as_of_at). -#}
{% macro previous_mart_build() -%}
    {{ previous_build([('marts', 'dim_customers'), ('intermediate', 'int_customers__features')], ['_built_at', '_as_of_at']) }}
{%- endmacro %}

{#- True for a staged row loaded after the previous build (`previous` has built_at; null: every row). -#}
{% macro loaded_since(previous, column='_loaded_at') -%}
    ({{ previous }}.built_at is null or {{ column }} > {{ previous }}.built_at)
{%- endmacro %}

{#- loaded_since as a comparison with a scalar watermark (every row before a stamped build): a filter the
    planner takes to raw's _loaded_at index through the staging views, where the cross join's `or` is a
    scan. Needs the model's `previous_build` CTE. -#}
{% macro loaded_after_previous_build(column) -%}
    {{ column }} > (
        select coalesce(built_at, cast('1900-01-01' as {{ dbt.type_timestamp() }})) from previous_build
    )
{%- endmacro %}

{#- True for a timestamp that a window of `days` days ending at the as-of instant took in or left between
    the previous build's as-of and this one's (either direction): the customers holding such a row have
    window counts that changed although none of their data did. Bounds inclusive (a superset is safe). -#}
{% macro crossed_window_edge(column, previous, as_of, days) -%}
    ({{ previous }}.as_of_at is null or {{ column }} between
        {{ dbt.dateadd('day', -days, 'least(' ~ previous ~ '.as_of_at, ' ~ as_of ~ '.as_of_at)') }}
        and {{ dbt.dateadd('day', -days, 'greatest(' ~ previous ~ '.as_of_at, ' ~ as_of ~ '.as_of_at)') }})
{%- endmacro %}

{#- Seconds elapsed from `start` to `end` (timestamps). dbt.datediff counts in the session's local time,
    which is off by an hour across a daylight-saving change, so Postgres subtracts the instants. -#}
{% macro seconds_between(start, end) -%}
    {%- if target.type == 'postgres' -%}
    extract(epoch from ({{ end }}) - ({{ start }}))
    {%- else -%}
    {{ dbt.datediff(start, end, 'second') }}
    {%- endif -%}
{%- endmacro %}

{#- Whole days from `start` to `end` (timestamps): completed 24-hour periods. -#}
{% macro whole_days_between(start, end) -%}
    cast(floor({{ seconds_between(start, end) }} / 86400.0) as {{ dbt.type_int() }})
{%- endmacro %}

{#- In an incremental customer model with a `scope` CTE (the keys it rewrites): true for those keys only. -#}
{% macro in_scope(column) -%}
    {%- if is_incremental() -%}
    {{ column }} in (select customer_key from scope)
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- The incremental filter of a per-customer model without a `scope` of its own: the touched keys only. -#}
{% macro touched_only(column) -%}
    {%- if is_incremental() -%}
    {{ column }} in (select customer_key from {{ ref('int_customers__touched_keys') }})
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the append-only per-customer models: the rows of the touched keys go before the build
    appends their new rows (a key may now have fewer rows, or none: delete+insert would keep those). -#}
{% macro drop_touched_rows(column='customer_key') -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ touched_only(column) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of fct_web_sessions: the stored sessions of the visitors int_web__sessions re-sessionised
    since the table's last build (sessions with events staged after its newest _built_at) go; the build
    writes their sessions again. A table without _built_at (built before the stamp) is emptied. -#}
{% macro drop_resessionised_visitors() -%}
    {%- if is_incremental() -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    delete from {{ this }}
    {%- if '_built_at' in columns %}
    where coalesce('anonymous_id:' || anonymous_id, 'shop_customer_id:' || shop_customer_id) in (
        select visitor
        from {{ ref('int_web__sessions') }}
        where last_staged_at > (select max(_built_at) from {{ this }})
    )
    {%- endif %}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
