{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_key']}],
        pre_hook=["{{ drop_touched_rows() }}"],
        post_hook=["{{ drop_rows_gone_from(ref('int_identity__record_keys'), 'customer_key') }}"],
    )
}}
{#- The surviving value of each profile field per customer, by the field's rule in the
    survivorship_rules seed, with the source(s) it came from. Incremental by customer like
    int_customers__field_candidates (the keys of int_customers__touched_keys are replaced). -#}
-- depends_on: {{ ref('int_customers__touched_keys') }}
with candidates as (
    select * from {{ ref('int_customers__field_candidates') }} where {{ touched_only('customer_key') }}
),

rules as (
    select
        field,
        rule,
        string_to_array(
            coalesce(nullif(trim(source_priority), ''), '{{ var("survivorship_default_priority") }}'), '>'
        ) as source_priority
    from {{ ref('survivorship_rules') }}
),

ranked as (
    select
        candidates.*,
        rules.rule,
        row_number() over (
            partition by candidates.customer_key, candidates.field
            order by
                candidates.is_usable desc,
                case when rules.rule = 'priority_source'
                    then coalesce(array_position(rules.source_priority, candidates.source), 99) end,
                candidates.updated_at desc nulls last,
                coalesce(array_position(rules.source_priority, candidates.source), 99),
                candidates.value
        ) as value_rank
    from candidates
    inner join rules using (field)
),

single_values as (
    select customer_key, field, rule, value, source as value_source, updated_at as value_updated_at
    from ranked
    where value_rank = 1 and rule <> 'merge'
),

merged_values as (
    select
        customer_key,
        field,
        rule,
        string_agg(distinct value, ',' order by value) as value,
        string_agg(distinct source, ',' order by source) as value_source,
        max(updated_at) as value_updated_at
    from ranked
    where rule = 'merge' and is_usable
    group by 1, 2, 3
),

surviving_values as (
    select * from single_values
    union all
    select * from merged_values
),

final as (
    select *, current_timestamp as _built_at from surviving_values
)

select * from final
