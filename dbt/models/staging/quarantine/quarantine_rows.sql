{#- Every raw row the staging layer rejected, one place to query (extraction's own quarantine of
    unparseable records is ops.quarantine). -#}
with shop as (
    select 'shop' as source_name, * from {{ ref('stg_shop__quarantine') }}
),

esp as (
    select 'esp' as source_name, * from {{ ref('stg_esp__quarantine') }}
),

web as (
    select 'web' as source_name, * from {{ ref('stg_web__quarantine') }}
),

final as (
    select * from shop
    union all
    select * from esp
    union all
    select * from web
)

select * from final
