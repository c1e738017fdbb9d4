-- One row per series (level x series_key) and calendar month with at least one won deal: won amount
-- (status = 'won') by month of close_date, close dates on or before as_of. Levels: company ('all'),
-- region, segment, team (team_id), rep (owner_id). Sparse; fct_bookings_monthly makes it dense.
with won as (

    select
        {{ month_start('close_date') }} as month_start,
        coalesce(cast(region as varchar), 'unknown') as region_key,
        coalesce(cast(segment as varchar), 'unknown') as segment_key,
        coalesce(cast(team_id as varchar), 'unknown') as team_key,
        coalesce(cast(team_name as varchar), 'unknown') as team_name,
        coalesce(cast(owner_id as varchar), 'unknown') as owner_key,
        coalesce(cast(owner_name as varchar), cast(owner_id as varchar), 'unknown') as owner_name,
        amount
    from {{ ref('fct_opportunities') }}
    where
        status = 'won'
        and close_date is not null
        and close_date <= {{ as_of() }}

),

by_level as (

    select
        'company' as series_level,
        'all' as series_key,
        'All' as series_name,
        month_start,
        amount
    from won
    union all
    select
        'region' as series_level,
        region_key as series_key,
        region_key as series_name,
        month_start,
        amount
    from won
    union all
    select
        'segment' as series_level,
        segment_key as series_key,
        segment_key as series_name,
        month_start,
        amount
    from won
    union all
    select
        'team' as series_level,
        team_key as series_key,
        team_name as series_name,
        month_start,
        amount
    from won
    union all
    select
        'rep' as series_level,
        owner_key as series_key,
        owner_name as series_name,
        month_start,
        amount
    from won

)

select
    series_level,
    series_key,
    max(series_name) as series_name,
    month_start,
    cast(sum(coalesce(amount, 0)) as {{ numeric_type() }}) as bookings,
    count(*) as won_count
from by_level
group by series_level, series_key, month_start
