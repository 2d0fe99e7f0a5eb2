{#- Connected components of the identity graph. Nodes are usable identifiers (see
    int_identity__identifier_checks); each source record links its own id to its other usable identifiers.
    Stitching is transitive: two records sharing any usable identifier, directly or through a chain, end
    up in one component. -#}
with observations as not materialized (
    select * from {{ ref('int_identity__observations') }}
),

checks as not materialized (
    select * from {{ ref('int_identity__identifier_checks') }}
),

excluded_nodes as (
    select identifier_type || ':' || identifier_value as node
    from checks
    where excluded_reason is not null
),

{#- Links between a record's own id and its other identifiers, unless either side is excluded. -#}
usable as (
    select
        o.identifier_type || ':' || o.identifier_value as node,
        o.record_type || ':' || o.record_id as record_node
    from observations as o
    where o.identifier_type || ':' || o.identifier_value not in (select node from excluded_nodes)
      and o.record_type || ':' || o.record_id not in (select node from excluded_nodes)
),

nodes as (
    select node from usable
    union
    select record_node from usable
),

edges as (
    select distinct record_node as node_a, node as node_b from usable where node <> record_node
    union
    select distinct node, record_node from usable where node <> record_node
),

reachable (root, node) as (
    with recursive walk (root, node) as (
        select node, node from nodes
        union
        select walk.root, edges.node_b
        from walk
        inner join edges on edges.node_a = walk.node
    )
    select root, node from walk
),

final as (
    select
        node,
        split_part(node, ':', 1) as identifier_type,
        substr(node, length(split_part(node, ':', 1)) + 2) as identifier_value,
        min(root) as component_id
    from reachable
    group by node
)

select * from final
