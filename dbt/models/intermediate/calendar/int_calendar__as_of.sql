{#- The single "as of" instant of a build: var as_of when given, else the latest order / email / web
    timestamp in the data (never now(), so a build over the same data always gives the same features).
    A build with records but no activity yet (customers, no orders or events) takes the latest record
    update; only an empty build falls back to the epoch. -#}
with activity as (
    select max(ordered_at) as latest_at from {{ ref('stg_shop__orders') }}
    union all
    select max(event_at) from {{ ref('stg_esp__events') }}
    union all
    select max(event_at) from {{ ref('stg_web__events') }}
),

records as (
    select max(updated_at) as latest_at from {{ ref('stg_shop__customers') }}
    union all
    select max(updated_at) from {{ ref('stg_crm__contacts') }}
),

final as (
    select
        {%- if var('as_of') %}
        '{{ var("as_of") }}'::timestamptz as as_of_at
        {%- else %}
        coalesce(
            (select max(latest_at) from activity),
            (select max(latest_at) from records),
            '1970-01-01'::timestamptz
        ) as as_of_at
        {%- endif %}
)

select * from final
