{#- Connected components of the identity graph. Nodes are usable identifiers (see
    int_identity__identifier_checks); each source record links its own id to its other usable identifiers.
    Stitching is transitive: two records sharing any usable identifier, directly or through a chain, end
    up in one component. -#}
with observations as (
    select * from {{ ref('int_identity__observations') }}
),

checks as (
    select * from {{ ref('int_identity__identifier_checks') }}
),

usable as (
    select
        o.*,
        o.identifier_type || ':' || o.identifier_value as node,
        o.record_type || ':' || o.record_id as record_node
    from observations as o
    inner join checks as c using (identifier_type, identifier_value)
    inner join checks as own
        on own.identifier_type = o.record_type
        and own.identifier_value = o.record_id
    where c.excluded_reason is null
      and own.excluded_reason is null
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
