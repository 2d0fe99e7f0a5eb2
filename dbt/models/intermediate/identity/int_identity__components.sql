{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ drop_component_region_rows() }}",
        post_hook=[
            "{{ drop_connected_components_work('int_identity__components') }}",
            "drop table if exists {{ this.schema }}.int_identity__components__region",
        ],
        indexes=[
            {'columns': ['node'], 'unique': True},
            {'columns': ['identifier_type', 'identifier_value']},
            {'columns': ['component_id']},
        ],
    )
}}
-- depends_on: {{ ref('int_identity__touched_identifiers') }}
{#- Connected components of the identity graph. Nodes are usable identifiers (see
    int_identity__identifier_checks); each source record links its own id to its other usable identifiers.
    Stitching is transitive: two records sharing any usable identifier, directly or through a chain, end
    up in one component. Computed by min-label propagation over work tables (macro connected_components),
    linear in the edges per pass; component_id is the component's smallest node.

    Incremental: only the region a new day can change is recomputed (macro component_region: the touched
    identifiers, the records of identifiers that became usable or excluded, and every node of the stored
    components holding those). Every edge that appeared or vanished has both ends in the region, so the
    region is a union of whole components of the new graph: propagating over its records' edges gives
    exactly the components (and smallest nodes) a full rebuild gives there; nodes outside keep their rows
    (and build stamps). A merge joins old components inside the region, a split divides one. -#}
{%- set region = component_region() %}
{%- set links_sql -%}
    with checks as (
        select identifier_type, identifier_value, excluded_reason
        from {{ ref('int_identity__identifier_checks') }}
    ),

    observations as (
        select o.*
        from {{ ref('int_identity__observations') }} as o
        {%- if region is not none %}
        inner join {{ region }} as region
            on region.identifier_type = o.record_type and region.identifier_value = o.record_id
        {%- endif %}
    )

    {#- A record and each of its identifiers, unless either side is excluded; (x, x) keeps a node without
        edges. -#}
    select
        o.record_type || ':' || o.record_id as node_a,
        o.identifier_type || ':' || o.identifier_value as node_b
    from observations as o
    left join checks as identifier_check
        on identifier_check.identifier_type = o.identifier_type
        and identifier_check.identifier_value = o.identifier_value
    left join checks as record_check
        on record_check.identifier_type = o.record_type and record_check.identifier_value = o.record_id
    where identifier_check.excluded_reason is null and record_check.excluded_reason is null
{%- endset -%}
{%- set graph = connected_components(links_sql, 'int_identity__components') %}

with nodes as (
    select * from {{ graph['nodes'] }}
),

labels as (
    select * from {{ graph['labels'] }}
),

final as (
    select
        nodes.node,
        split_part(nodes.node, ':', 1) as identifier_type,
        substr(nodes.node, length(split_part(nodes.node, ':', 1)) + 2) as identifier_value,
        roots.node as component_id,
        {{ dbt.current_timestamp() }} as _built_at
    from nodes
    inner join labels on labels.node_id = nodes.node_id
    inner join nodes as roots on roots.node_id = labels.label
)

select * from final
