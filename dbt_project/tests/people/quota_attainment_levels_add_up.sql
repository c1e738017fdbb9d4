-- Every level of mart_quota_attainment adds up to the same totals per period (team, region and
-- company are sums of owners); returns the periods and levels whose totals differ from the owners'.
with totals as (

    select
        level,
        period_type,
        period_start,
        sum(quota_amount) as quota_amount,
        sum(booked_amount) as booked_amount,
        sum(open_pipeline_amount) as open_pipeline_amount
    from {{ ref('mart_quota_attainment') }}
    group by level, period_type, period_start

)

select
    totals.level,
    totals.period_type,
    totals.period_start
from totals
inner join totals as owners
    on
        totals.period_type = owners.period_type
        and totals.period_start = owners.period_start
        and owners.level = {{ hierarchy_level('rep') }}
where
    abs(totals.quota_amount - owners.quota_amount) > 0.01
    or abs(totals.booked_amount - owners.booked_amount) > 0.01
    or abs(totals.open_pipeline_amount - owners.open_pipeline_amount) > 0.01
