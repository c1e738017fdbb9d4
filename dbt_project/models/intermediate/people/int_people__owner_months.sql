-- One row per owner, calendar (fiscal) month and team of the day with a quota, a deal won on or before
-- as_of, or an open deal whose close date falls in the month. Deals count for their current owner (a deal
-- moved between reps counts in full for the rep who owns it at export time). Each fact counts in the team
-- of its own date (team_id, team_name, region): a quota in the owner's team on the month's first day
-- (int_quotas__resolved), a won deal in the team on its close date, open pipeline in today's team
-- (fct_opportunities); so a rep who moved mid-month has a row for each team. attributed_on: the latest
-- date among the row's facts (what names a rep's team in a period, mart_quota_attainment).
with quotas as (

    select
        owner_id,
        quota_month as fiscal_month,
        team_id,
        team_name,
        region,
        quota_month as attributed_on,
        quota_amount,
        cast(0 as {{ numeric_type() }}) as booked_amount,
        0 as won_count,
        cast(0 as {{ numeric_type() }}) as open_pipeline_amount,
        0 as open_pipeline_count
    from {{ ref('int_quotas__resolved') }}

),

deals as (

    -- a won deal books its amount, an open one is pipeline: each deal is one of the two
    select
        owner_id,
        close_fiscal_month as fiscal_month,
        {{ team_columns() }},
        attributed_on,
        cast(0 as {{ numeric_type() }}) as quota_amount,
        case when status = 'won' then amount else cast(0 as {{ numeric_type() }}) end as booked_amount,
        case when status = 'won' then 1 else 0 end as won_count,
        case when status = 'open' then amount else cast(0 as {{ numeric_type() }}) end as open_pipeline_amount,
        case when status = 'open' then 1 else 0 end as open_pipeline_count
    from {{ ref('fct_opportunities') }}
    where
        (status = 'won' and close_date <= {{ as_of() }})
        or (status = 'open' and close_date is not null)

),

unioned as (

    select * from quotas
    union all
    select * from deals

)

select
    owner_id,
    fiscal_month,
    team_id,
    team_name,
    region,
    max(attributed_on) as attributed_on,
    cast(sum(quota_amount) as {{ numeric_type() }}) as quota_amount,
    cast(coalesce(sum(booked_amount), 0) as {{ numeric_type() }}) as booked_amount,
    cast(sum(won_count) as integer) as won_count,
    cast(coalesce(sum(open_pipeline_amount), 0) as {{ numeric_type() }}) as open_pipeline_amount,
    cast(sum(open_pipeline_count) as integer) as open_pipeline_count
from unioned
where owner_id is not null
group by owner_id, fiscal_month, team_id, team_name, region
