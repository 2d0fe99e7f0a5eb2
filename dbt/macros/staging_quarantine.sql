{#- Row-level rules of the staging layer: a raw row that matches one is unusable (it would corrupt facts),
    so its staging model leaves it out and the source's quarantine model keeps it with the reason.
    One place for the rules, so staged + quarantined = raw (after dedupe) by construction.
    Optional fields are not rules either: an order without ordered_at takes created_at, then
    updated_at (stg_shop__orders.ordered_at_source says which), and only an order with none of them
    is unusable. Flags that keep the row (e.g. is_email_valid) are not rules, and neither are unknown enum values
    (a new status or event type is a change of the source, which the accepted_values tests stop). -#}
{% macro staging_quarantine_rules(entity) -%}
    {%- set future = "> _loaded_at + interval '" ~ var('quarantine_future_tolerance_hours', 24) ~ " hours'" -%}
    {%- set rules = {
        'shop_orders': [
            ("order_total < 0", 'negative order_total'),
            ("coalesce(ordered_at, created_at, updated_at) is null", 'order time missing'),
        ],
        'shop_order_items': [
            ("quantity is null or quantity <= 0", 'quantity <= 0'),
            ("unit_price < 0", 'unit_price < 0'),
        ],
        'esp_events': [
            ("event_timestamp is null", 'event_timestamp missing'),
            ("event_timestamp " ~ future, 'event_timestamp in the future'),
        ],
        'web_events': [
            ("event_timestamp is null", 'event_timestamp missing'),
            ("event_timestamp " ~ future, 'event_timestamp in the future'),
        ],
    } -%}
    {{ return(rules[entity]) }}
{%- endmacro %}

{#- The first rule a row breaks (null when the row is clean). -#}
{% macro quarantine_reason(entity) -%}
    case
    {%- for condition, reason in staging_quarantine_rules(entity) %}
        when {{ condition }} then '{{ reason }}'
    {%- endfor %}
    end
{%- endmacro %}

{#- Every reason a rule can give (for accepted_values tests and docs). -#}
{% macro quarantine_reasons() -%}
    {%- set reasons = [] -%}
    {%- for entity in ['shop_orders', 'shop_order_items', 'esp_events', 'web_events'] -%}
        {%- for condition, reason in staging_quarantine_rules(entity) -%}
            {%- do reasons.append(reason) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(reasons) }}
{%- endmacro %}

{#- Quarantined raw row in the shape every quarantine model shares. -#}
{% macro quarantine_columns(source_table, key_column) -%}
        '{{ source_table }}:' || {{ key_column }}::text as quarantine_id,
        '{{ source_table }}'::text as source_table,
        {{ key_column }}::text as source_key,
        quarantine_reason as reason,
        to_jsonb(checked) - 'quarantine_reason' - 'copy_number' as record,
        _loaded_at,
        current_timestamp as _staged_at
{%- endmacro %}

{#- Incremental quarantine of an event table: rows loaded since the last build (same lookback as
    new_events_only) whose id is neither quarantined nor already staged (first copy wins). -#}
{% macro new_quarantine_candidates(id_column, staged_model, lookback_hours=6) -%}
    where not exists (select 1 from {{ ref(staged_model) }} staged where staged.{{ id_column }} = raw_rows.{{ id_column }})
    {%- if is_incremental() %}
      and raw_rows._loaded_at > (
            select coalesce(max(_loaded_at), '-infinity'::timestamptz) - interval '{{ lookback_hours }} hours'
            from {{ this }}
        )
      and not exists (select 1 from {{ this }} quarantined where quarantined.source_key = raw_rows.{{ id_column }})
    {%- endif %}
{%- endmacro %}

{#- A late, clean copy of a quarantined event was staged: the event is no longer quarantined. -#}
{% macro drop_superseded_quarantine(staged_model, id_column) -%}
    delete from {{ this }} as quarantined
    where exists (
        select 1 from {{ ref(staged_model) }} as staged where staged.{{ id_column }} = quarantined.source_key
    )
{%- endmacro %}

{#- Events: the first copy of each id, with its quarantine reason. Staging keeps the clean ones, the
    source's quarantine model the others; both call this, so they choose the same copy. The order is
    total (a file line is loaded once: a reloaded day replaces its rows), so the choice is the same on
    every build. Rows landed before raw had _source_line tie only among themselves. -#}
{% macro checked_first_copies(relation, entity) -%}
    {%- set file_order = '_loaded_at, _source_file, _source_line nulls last' -%}
    {%- set events = {
        'esp_events': {'id': 'event_id', 'copy_order': file_order},
        'web_events': {'id': 'message_id', 'copy_order': 'received_at nulls last, ' ~ file_order},
    }[entity] -%}
    select * from (
        select
            *,
            row_number() over (partition by {{ events.id }} order by {{ events.copy_order }}) as copy_number,
            {{ quarantine_reason(entity) }} as quarantine_reason
        from {{ relation }}
        where {{ events.id }} is not null
    ) as copies
    where copy_number = 1
{%- endmacro %}
