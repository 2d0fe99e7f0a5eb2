{#- Retired customer keys and the key that replaced them (when two known people turn out to be one, the
    older key survives). Accumulates across runs: reads its own previous version; chains are collapsed so
    surviving_key is always a live key. -#}
{%- set previous = previous_version() %}

with identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

as_of as (
    select * from {{ ref('int_calendar__as_of') }}
),

live_keys as (
    select distinct customer_key from identifiers where customer_key is not null
),

previous_history as (
    {%- if previous is not none %}
    select retired_key, surviving_key, retired_at from {{ previous }}
    {%- else %}
    select null::text as retired_key, null::text as surviving_key, null::timestamptz as retired_at
    where false
    {%- endif %}
),

moves as (
    select
        previous_customer_key as retired_key,
        customer_key as surviving_key,
        count(*) as identifiers_moved
    from identifiers
    where previous_customer_key is not null
      and customer_key is not null
      and previous_customer_key <> customer_key
      and previous_customer_key not in (select customer_key from live_keys)
    group by 1, 2
),

new_retirements as (
    select retired_key, surviving_key
    from (
        select
            *,
            row_number() over (
                partition by retired_key order by identifiers_moved desc, surviving_key
            ) as move_rank
        from moves
    ) as ranked
    where move_rank = 1
),

combined as (
    select
        previous_history.retired_key,
        coalesce(new_retirements.surviving_key, previous_history.surviving_key) as surviving_key,
        previous_history.retired_at
    from previous_history
    left join new_retirements on new_retirements.retired_key = previous_history.surviving_key
    union all
    select
        new_retirements.retired_key,
        new_retirements.surviving_key,
        as_of.as_of_at
    from new_retirements
    cross join as_of
    where new_retirements.retired_key not in (select retired_key from previous_history)
),

final as (
    select retired_key, surviving_key, retired_at
    from combined
    where retired_key not in (select customer_key from live_keys)
)

select * from final
