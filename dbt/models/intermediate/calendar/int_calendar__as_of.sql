{#- The single "as of" instant of a build: var as_of when given, else the latest order / email / web
    timestamp in the data (never now(), so a build over the same data always gives the same features). -#}
with latest as (
    select max(ordered_at) as latest_at from {{ ref('stg_shop__orders') }}
    union all
    select max(event_at) from {{ ref('stg_esp__events') }}
    union all
    select max(event_at) from {{ ref('stg_web__events') }}
),

final as (
    select
        {%- if var('as_of') %}
        '{{ var("as_of") }}'::timestamptz as as_of_at
        {%- else %}
        coalesce(max(latest_at), '1970-01-01'::timestamptz) as as_of_at
        {%- endif %}
    from latest
)

select * from final
