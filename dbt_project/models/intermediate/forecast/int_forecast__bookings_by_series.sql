-- One row per series (level x series_key) and calendar month with at least one won deal: won amount
-- (status = 'won') by month of close_date, close dates on or before as_of. Levels: every level of var
-- hierarchy (company 'all', region, segment, team_id, owner_id). Sparse; fct_bookings_monthly makes it dense.
-- Team and region are the team of the day (fct_opportunities' team_id, region: the owner's on the close
-- date): a team's series is what the team booked, the same number the marts and the semantic layer give,
-- so a forecast is trained on and scored against one series (docs/metrics.md, "Forecasts by team").
with won as (

    select
        {{ month_start('close_date') }} as month_start,
        region,
        segment,
        team_id,
        team_name,
        owner_id,
        owner_name,
        amount
    from {{ ref('fct_opportunities') }}
    where
        status = 'won'
        and close_date is not null
        and close_date <= {{ as_of() }}

),

by_level as (
    {{ fan_out_levels('won', ['month_start', 'amount'], name_as='series_name') }}
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
