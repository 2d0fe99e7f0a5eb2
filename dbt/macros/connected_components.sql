{#- Connected components of an undirected graph by iterative min-label propagation with pointer jumping,
    the way warehouse identity-stitching tools do it (a recursive CTE re-sorts the whole edge table on
    every pass and grows super-linearly).

    `links_sql` selects (node_a, node_b) text pairs; a pair (x, x) declares a node without edges. Nodes get
    integer ids in text order, so the smallest id of a component is its smallest node. Every pass is two
    hash joins over the edges: a node takes the smallest label among itself and its neighbours, then the
    label of that label (pointer jumping: the passes grow with the log of a component's diameter, not the
    diameter). It stops when a pass changes no label.

    Runs its statements with run_query when the model builds (dbt run/build only: compile and docs have no
    side effects) and leaves `<prefix>__nodes (node_id, node)` and `<prefix>__labels (node_id, label)`;
    returns the two relations. Plain CREATE TABLE AS, joins and min(): portable but for `unlogged`
    (Postgres only: work tables need no WAL). -#}
{% macro connected_components(links_sql, prefix, max_passes=200) -%}
    {%- set nodes = api.Relation.create(database=this.database, schema=this.schema, identifier=prefix ~ '__nodes') -%}
    {%- set edges = api.Relation.create(database=this.database, schema=this.schema, identifier=prefix ~ '__edges') -%}
    {%- set labels = api.Relation.create(database=this.database, schema=this.schema, identifier=prefix ~ '__labels') -%}
    {%- set next_labels = api.Relation.create(database=this.database, schema=this.schema, identifier=prefix ~ '__labels_next') -%}
    {%- set result = {'nodes': nodes, 'labels': labels} -%}
    {%- if not (execute and flags.WHICH in ('run', 'build', 'retry')) -%}
        {{ return(result) }}
    {%- endif -%}
    {%- set unlogged = 'unlogged' if target.type == 'postgres' else '' -%}
    {%- for relation in [nodes, edges, labels, next_labels] %}
        {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- endfor %}
    {%- do run_query('create ' ~ unlogged ~ ' table ' ~ nodes ~ ' as
        with links as (' ~ links_sql ~ '),
        distinct_nodes as (
            select node_a as node from links
            union
            select node_b from links
        )
        select row_number() over (order by node) as node_id, node from distinct_nodes') -%}
    {%- do run_query('create index on ' ~ nodes ~ ' (node)') -%}
    {%- do run_query('analyze ' ~ nodes) -%}
    {#- Both directions of every edge (a node without edges keeps its own label through the left joins). -#}
    {%- do run_query('create ' ~ unlogged ~ ' table ' ~ edges ~ ' as
        with links as (' ~ links_sql ~ '),
        pairs as (
            select a.node_id as node_a, b.node_id as node_b
            from links
            inner join ' ~ nodes ~ ' as a on a.node = links.node_a
            inner join ' ~ nodes ~ ' as b on b.node = links.node_b
            where links.node_a <> links.node_b
        )
        select node_a, node_b from pairs
        union
        select node_b, node_a from pairs') -%}
    {%- do run_query('analyze ' ~ edges) -%}
    {%- do run_query('create ' ~ unlogged ~ ' table ' ~ labels ~ ' as
        select nodes.node_id, least(nodes.node_id, coalesce(min(edges.node_b), nodes.node_id)) as label
        from ' ~ nodes ~ ' as nodes
        left join ' ~ edges ~ ' as edges on edges.node_a = nodes.node_id
        group by nodes.node_id') -%}
    {%- for pass in range(max_passes) %}
        {%- do run_query('analyze ' ~ labels) -%}
        {%- do run_query('create ' ~ unlogged ~ ' table ' ~ next_labels ~ ' as
            with neighbour_min as (
                select labels.node_id, least(labels.label, coalesce(min(neighbours.label), labels.label)) as label
                from ' ~ labels ~ ' as labels
                left join ' ~ edges ~ ' as edges on edges.node_a = labels.node_id
                left join ' ~ labels ~ ' as neighbours on neighbours.node_id = edges.node_b
                group by labels.node_id, labels.label
            )
            select neighbour_min.node_id, least(neighbour_min.label, jumped.label) as label
            from neighbour_min
            inner join neighbour_min as jumped on jumped.node_id = neighbour_min.label') -%}
        {%- set changed = run_query('select count(*) from ' ~ next_labels ~ ' as next_labels
            inner join ' ~ labels ~ ' as labels on labels.node_id = next_labels.node_id
            where labels.label <> next_labels.label').columns[0].values()[0] -%}
        {%- do run_query('drop table ' ~ labels) -%}
        {%- do run_query('alter table ' ~ next_labels ~ ' rename to ' ~ labels.identifier) -%}
        {%- if changed == 0 -%}
            {%- do log('connected_components ' ~ prefix ~ ': converged after ' ~ (pass + 1) ~ ' passes') -%}
            {{ return(result) }}
        {%- endif -%}
    {%- endfor %}
    {{ exceptions.raise_compiler_error('connected_components ' ~ prefix ~ ': no convergence in ' ~ max_passes ~ ' passes') }}
{%- endmacro %}

{#- Post-hook: drop the work tables connected_components left (the model has copied what it needs). -#}
{% macro drop_connected_components_work(prefix) -%}
    {%- for suffix in ['__nodes', '__edges', '__labels', '__labels_next'] -%}
        drop table if exists {{ api.Relation.create(database=this.database, schema=this.schema, identifier=prefix ~ suffix) }};
    {% endfor -%}
{%- endmacro %}

{#- The part of the identity graph an incremental build of int_identity__components recomputes, as a work
    table `<model>__region (identifier_type, identifier_value)`: the touched identifiers
    (int_identity__touched_identifiers), the records holding an identifier whose usability changed (it
    became excluded: a split; or usable again) and the identifiers of a record whose own node's did, and
    every node of the stored components of all those. Returns the relation, or none when the build is not
    incremental (or dbt only compiles). -#}
{% macro component_region() -%}
    {%- if not (execute and is_incremental() and flags.WHICH in ('run', 'build', 'retry')) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set region = api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__region') -%}
    {%- set observations = ref('int_identity__observations') -%}
    {%- do run_query('drop table if exists ' ~ region) -%}
    {%- do run_query('create ' ~ ('unlogged' if target.type == 'postgres' else '') ~ ' table ' ~ region ~ ' as
        with touched as (
            select identifier_type, identifier_value from ' ~ ref('int_identity__touched_identifiers') ~ '
        ),
        usability_changed as (
            select touched.identifier_type, touched.identifier_value
            from touched
            left join ' ~ ref('int_identity__identifier_checks') ~ ' as checks
                on checks.identifier_type = touched.identifier_type
                and checks.identifier_value = touched.identifier_value
            left join ' ~ this ~ ' as stored
                on stored.identifier_type = touched.identifier_type
                and stored.identifier_value = touched.identifier_value
            where (checks.identifier_type is not null and checks.excluded_reason is null)
                <> (stored.node is not null)
        ),
        seeds as (
            select identifier_type, identifier_value from touched
            union
            select o.record_type, o.record_id
            from ' ~ observations ~ ' as o
            inner join usability_changed as changed
                on changed.identifier_type = o.identifier_type and changed.identifier_value = o.identifier_value
            union
            select o.identifier_type, o.identifier_value
            from ' ~ observations ~ ' as o
            inner join usability_changed as changed
                on changed.identifier_type = o.record_type and changed.identifier_value = o.record_id
        ),
        stored_components as (
            select distinct stored.component_id
            from ' ~ this ~ ' as stored
            inner join seeds
                on seeds.identifier_type = stored.identifier_type and seeds.identifier_value = stored.identifier_value
        )
        select identifier_type, identifier_value from seeds
        union
        select stored.identifier_type, stored.identifier_value
        from ' ~ this ~ ' as stored
        inner join stored_components using (component_id)') -%}
    {%- if target.type == 'postgres' -%}
        {%- do run_query('create index on ' ~ region ~ ' (identifier_type, identifier_value)') -%}
        {%- do run_query('analyze ' ~ region) -%}
    {%- endif -%}
    {{ return(region) }}
{%- endmacro %}

{#- Pre-hook of int_identity__components: an incremental build deletes the stored rows of its region
    (component_region) before appending the region's components. -#}
{% macro drop_component_region_rows() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as stored
    where exists (
        select 1 from {{ this.schema }}.{{ this.identifier }}__region as region
        where region.identifier_type = stored.identifier_type and region.identifier_value = stored.identifier_value
    )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
