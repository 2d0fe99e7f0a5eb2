{#- Every identifier, where it came from and the customer_key it resolved to (null for identifiers excluded
    from matching, with the reason). Keys are stable across runs: this model reads its own previous
    version, a component keeps the oldest key its identifiers had, keys retired by a merge are recorded in
    int_identity__key_history. A brand-new component gets a key derived from its earliest identifier, so
    a from-scratch rebuild gives the same keys as incremental runs did (the older key is the earliest). -#}
{{ config(pre_hook="{{ hash_joins_only() }}") }}
{%- set previous = previous_version() %}

with components as (
    select * from {{ ref('int_identity__components') }}
),

checks as (
    select * from {{ ref('int_identity__identifier_checks') }}
),

previous_keys as (
    {%- if previous is not none %}
    {%- set stamped = 'key_changed_at' in adapter.get_columns_in_relation(previous) | map(attribute='name') | list %}
    select identifier_type, identifier_value, customer_key, key_first_seen_at, previous_customer_key,
        {{ 'key_changed_at' if stamped else 'null::timestamptz as key_changed_at' }}
    from {{ previous }}
    where customer_key is not null
    {%- else %}
    select null::text as identifier_type, null::text as identifier_value,
        null::text as customer_key, null::timestamptz as key_first_seen_at, null::text as previous_customer_key,
        null::timestamptz as key_changed_at
    where false
    {%- endif %}
),

nodes as (
    select
        components.*,
        checks.first_seen_at
    from components
    inner join checks using (identifier_type, identifier_value)
),

component_previous_keys as (
    select
        nodes.component_id,
        previous_keys.customer_key,
        min(previous_keys.key_first_seen_at) as key_first_seen_at,
        count(*) as nodes_with_key
    from nodes
    inner join previous_keys using (identifier_type, identifier_value)
    group by 1, 2
),

{#- A previous key belongs to the component holding most of its identifiers (matters when a component
    splits); a component keeps the oldest key it owns. -#}
key_owners as (
    select customer_key, component_id, key_first_seen_at
    from (
        select
            *,
            row_number() over (
                partition by customer_key order by nodes_with_key desc, component_id
            ) as owner_rank
        from component_previous_keys
    ) as ranked
    where owner_rank = 1
),

kept_keys as (
    select component_id, customer_key, key_first_seen_at
    from (
        select
            *,
            row_number() over (
                partition by component_id order by key_first_seen_at, customer_key
            ) as key_rank
        from key_owners
    ) as ranked
    where key_rank = 1
),

founders as (
    select component_id, node as founding_node, first_seen_at
    from (
        select
            *,
            row_number() over (partition by component_id order by first_seen_at nulls last, node) as node_rank
        from nodes
    ) as ranked
    where node_rank = 1
),

{#- A join, not an EXISTS in the select list: that runs as a subplan, per row (every key scanned for each
    new component) whenever the planner under-estimates the new components, which it does here (CTE row
    estimates are off by 100x). key_owners has one row per key, so the join adds no rows. -#}
new_keys as (
    select
        founders.component_id,
        case
            when taken.customer_key is not null
                then {{ customer_key_for("founders.founding_node || '|' || founders.component_id") }}
            else {{ customer_key_for('founders.founding_node') }}
        end as customer_key,
        founders.first_seen_at as key_first_seen_at
    from founders
    left join kept_keys using (component_id)
    left join key_owners as taken on taken.customer_key = {{ customer_key_for('founders.founding_node') }}
    where kept_keys.component_id is null
),

component_keys as (
    select component_id, customer_key, key_first_seen_at from kept_keys
    union all
    select component_id, customer_key, key_first_seen_at from new_keys
),

final as (
    select
        checks.identifier_type,
        checks.identifier_value,
        checks.sources as source,
        checks.first_seen_at,
        checks.excluded_reason,
        checks.excluded_reason is null as is_used_for_matching,
        nodes.component_id,
        component_keys.customer_key,
        component_keys.key_first_seen_at,
        case
            when previous_keys.customer_key is distinct from component_keys.customer_key
                then previous_keys.customer_key
            else previous_keys.previous_customer_key
        end as previous_customer_key,
        {#- The build that gave the identifier its key (int_customers__touched_keys reads it). -#}
        case
            when previous_keys.customer_key is not distinct from component_keys.customer_key
                then previous_keys.key_changed_at
            else current_timestamp
        end as key_changed_at
    from checks
    left join nodes using (identifier_type, identifier_value)
    left join component_keys using (component_id)
    left join previous_keys using (identifier_type, identifier_value)
)

select * from final
