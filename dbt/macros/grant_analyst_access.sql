{#- Creates the read-only role var('analyst_role') if missing (NOLOGIN is not used: analysts connect with
    it; set a password with ALTER ROLE on servers that need one) and grants it the marts: whole tables
    without PII, and for tables with columns tagged meta.pii only the other columns (column privileges).
    Nothing in raw, staging, intermediate or snapshots. Runs at the end of every dbt run/build. -#}
{% macro grant_analyst_access() %}
    {%- if execute and flags.WHICH in ('run', 'build', 'run-operation') %}
        {%- set role = var('analyst_role') %}
        {#- A warehouse user without CREATEROLE cannot create the role: say so and skip the grants
            rather than failing the build (a DBA can create the role once). -#}
        {%- call statement('analyst_role', fetch_result=False, auto_begin=True) %}
            do $$
            begin
                if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
                    create role {{ role }} login;
                end if;
            exception
                when duplicate_object or unique_violation then null;
                when insufficient_privilege then raise notice 'cannot create role {{ role }}';
            end
            $$;
        {%- endcall %}
        {%- if run_query("select 1 from pg_roles where rolname = '" ~ role ~ "'").rows | length == 0 %}
            {{ log("role " ~ role ~ " does not exist and could not be created: analyst grants skipped", info=True) }}
            {{ return('') }}
        {%- endif %}
        {%- call statement('analyst_schema', fetch_result=False, auto_begin=True) %}
            do $$
            begin
                execute 'grant connect on database {{ adapter.quote(target.dbname) }} to {{ role }}';
            exception when insufficient_privilege then raise notice 'cannot grant connect to {{ role }}';
            end
            $$;
            grant usage on schema marts to {{ role }};
        {%- endcall %}
        {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.schema == 'marts'
            and node.config.materialized != 'ephemeral' %}
            {%- set relation = adapter.get_relation(database=node.database, schema=node.schema,
                                                    identifier=node.alias) %}
            {%- if relation is not none %}
                {%- set pii = [] %}
                {%- for column in node.columns.values() if column.meta.get('pii') %}
                    {%- do pii.append(column.name) %}
                {%- endfor %}
                {%- call statement('grant_' ~ node.name, fetch_result=False, auto_begin=True) %}
                    revoke all on {{ relation }} from {{ role }};
                    {%- if pii | length == 0 %}
                    grant select on {{ relation }} to {{ role }};
                    {%- else %}
                    {%- set visible = [] %}
                    {%- for column in adapter.get_columns_in_relation(relation) if column.name not in pii %}
                        {%- do visible.append(adapter.quote(column.name)) %}
                    {%- endfor %}
                    grant select ({{ visible | join(', ') }}) on {{ relation }} to {{ role }};
                    {%- endif %}
                {%- endcall %}
            {%- endif %}
        {%- endfor %}
        {%- do adapter.commit() %}
    {%- endif %}
{% endmacro %}
