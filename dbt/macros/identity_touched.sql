{#- The identity chain's previous build: one row (built_at), the earliest of the newest build stamps of its
    incremental models, so a model whose build failed is caught up by the next run. Null when one is
    missing or unstamped (first build, a full refresh, a warehouse from before the stamps): then every
    record counts as touched. Read without ref(): these models are downstream of the touched records. -#}
{% macro identity_previous_build() -%}
    {{ previous_build([('intermediate', 'int_identity__observations'), ('intermediate', 'int_identity__identifier_checks'), ('intermediate', 'int_identity__components')]) }}
{%- endmacro %}

{#- In an incremental identity model: true for the rows of records in int_identity__touched_records. -#}
{% macro identity_record_touched(record_type, column) -%}
    {%- if is_incremental() -%}
    exists (
        select 1 from {{ ref('int_identity__touched_records') }} as touched
        where touched.record_type = {{ record_type }} and touched.record_id = {{ column }}
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- In an incremental identity model: true for identifiers in int_identity__touched_identifiers. -#}
{% macro identity_identifier_touched(type_column, value_column) -%}
    {%- if is_incremental() -%}
    exists (
        select 1 from {{ ref('int_identity__touched_identifiers') }} as touched
        where touched.identifier_type = {{ type_column }} and touched.identifier_value = {{ value_column }}
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the identity models appended by touched record / identifier: their stored rows go before
    the build appends what they are now (a record or identifier may have fewer rows now, or none). -#}
{% macro drop_touched_identity_rows(by) -%}
    {%- if is_incremental() and by == 'record' -%}
    delete from {{ this }} as stored where {{ identity_record_touched('stored.record_type', 'stored.record_id') }}
    {%- elif is_incremental() -%}
    delete from {{ this }} as stored where {{ identity_identifier_touched('stored.identifier_type', 'stored.identifier_value') }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- A bare national phone (no "+"/"00") of `bare_records` (source, record_type, record_id, phone_facts,
    observed_at) also carries the one fully-qualified number of `phone_records` that is that national
    number behind some calling code (var identity_complete_national_phones); two or more: none. Postgres
    jsonb reads of the loaders' phone_facts (the facts are jsonb in raw; a portable form needs them as
    columns). -#}
{% macro national_phone_completions(bare_records, phone_records) -%}
    select
        bare.source,
        bare.record_type,
        bare.record_id,
        min(international.phone) as phone,
        min(bare.observed_at) as observed_at
    from {{ bare_records }} as bare
    inner join (
        select distinct
            phone,
            jsonb_array_elements_text(phone_facts -> 'national_numbers') as national_number
        from {{ phone_records }}
        where coalesce((phone_facts ->> 'international')::boolean, false)
    ) as international
        on international.national_number = bare.phone_facts ->> 'national'
    where {{ 'true' if var('identity_complete_national_phones') else 'false' }}
      and not coalesce((bare.phone_facts ->> 'international')::boolean, false)
    group by 1, 2, 3
    having count(distinct international.phone) = 1
{%- endmacro %}

{#- The phones of CRM contacts and shop customers, with the loaders' phone facts (`crm`, `shop`: their
    staging relations, whole or filtered). -#}
{% macro identity_phone_records(crm, shop) -%}
    select 'crm' as source, 'crm_contact_id' as record_type, crm_contact_id as record_id,
        phone, phone_facts, created_at as observed_at
    from {{ crm }}
    where phone is not null
    union all
    select 'ecommerce', 'shop_customer_id', shop_customer_id, phone, phone_facts, created_at
    from {{ shop }}
    where phone is not null
{%- endmacro %}
