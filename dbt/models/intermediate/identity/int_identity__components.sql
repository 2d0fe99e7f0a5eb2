{{ config(post_hook=["{{ drop_connected_components_work('int_identity__components') }}"]) }}
{#- Connected components of the identity graph. Nodes are usable identifiers (see
    int_identity__identifier_checks); each source record links its own id to its other usable identifiers.
    Stitching is transitive: two records sharing any usable identifier, directly or through a chain, end
    up in one component. Computed by min-label propagation over work tables (macro connected_components),
    linear in the edges per pass; component_id is the component's smallest node. -#}
{%- set links_sql -%}
    with excluded_nodes as (
        select identifier_type || ':' || identifier_value as node
        from {{ ref('int_identity__identifier_checks') }}
        where excluded_reason is not null
    ),

    usable as (
        select
            o.identifier_type || ':' || o.identifier_value as node,
            o.record_type || ':' || o.record_id as record_node
        from {{ ref('int_identity__observations') }} as o
    )

    {#- A record and each of its identifiers, unless either side is excluded; (x, x) keeps a node without
        edges. -#}
    select record_node as node_a, node as node_b
    from usable
    where node not in (select node from excluded_nodes)
      and record_node not in (select node from excluded_nodes)
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
        roots.node as component_id
    from nodes
    inner join labels on labels.node_id = nodes.node_id
    inner join nodes as roots on roots.node_id = labels.label
)

select * from final
