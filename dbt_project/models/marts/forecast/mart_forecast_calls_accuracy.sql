-- One row per series (company, region, team, rep), call date (first day of a month) and target month
-- (horizon 1 = the call's month, 2 = the next): the reps' own call scored like the machine forecast.
-- commit = open 'Commit' deals closing in the target month (snapshot at the end of the day before the
-- call date) + bookings already won in the target month before the call date; best_case = commit + open
-- 'Best Case' deals. actual = fct_bookings_monthly bookings, once the target month ended on or before
-- as_of. Every series with bookings gets a row for every call date (a call of 0 when nothing is
-- committed); series with a call but no bookings yet are kept too.
with calls as (

    select * from {{ ref('int_forecast__call_pipeline') }}

),

bookings as (

    select * from {{ ref('fct_bookings_monthly') }}
    where level in {{ hierarchy_level_list(['company', 'region', 'team', 'rep']) }}

),

call_dates as (

    select distinct
        {{ add_days('snapshot_date', 1) }} as call_date
    from {{ ref('fct_pipeline_snapshots') }}
    where {{ month_start(add_days('snapshot_date', 1)) }} = {{ add_days('snapshot_date', 1) }}

),

horizons as (

    select 1 as horizon
    union all
    select 2 as horizon

),

series as (

    select
        level as series_level,
        series_key,
        max(series_name) as series_name
    from bookings
    group by level, series_key

),

grid as (

    select
        series.series_level,
        series.series_key,
        call_dates.call_date,
        horizons.horizon,
        {{ add_months('call_dates.call_date', 'horizons.horizon - 1') }} as target_month
    from series
    cross join call_dates
    cross join horizons
    union
    select
        series_level,
        series_key,
        call_date,
        horizon,
        target_month
    from calls

),

won_deals as (

    select
        close_date,
        amount,
        -- the team of the day (the close date's), as the forecast series have it
        region,
        team_id,
        owner_id
    from {{ ref('fct_opportunities') }}
    where status = 'won' and close_date <= {{ as_of() }}

),

won_by_level as (
    -- each won deal counts in its company, region, team and rep series
    {{ fan_out_levels('won_deals', ['close_date', 'amount'], levels=['company', 'region', 'team', 'rep']) }}
),

won_by_day as (

    -- won amount by series and close date
    select
        series_level,
        series_key,
        close_date,
        sum(coalesce(amount, 0)) as won_amount
    from won_by_level
    group by series_level, series_key, close_date

),

won_before_call as (

    -- won deals closing in the target month before the call date (none when the call date is the first
    -- day of the target month); an equality join on the series, then the date range
    select
        grid.series_level,
        grid.series_key,
        grid.call_date,
        grid.target_month,
        sum(won_by_day.won_amount) as won_amount
    from grid
    inner join won_by_day
        on
            grid.series_level = won_by_day.series_level
            and grid.series_key = won_by_day.series_key
            and grid.target_month <= won_by_day.close_date
            and grid.call_date > won_by_day.close_date
    group by grid.series_level, grid.series_key, grid.call_date, grid.target_month

),

joined as (

    select
        grid.series_level,
        grid.series_key,
        grid.series_level || ':' || grid.series_key as series_id,
        series.series_name,
        grid.call_date,
        grid.horizon,
        grid.target_month,
        cast(coalesce(won_before_call.won_amount, 0) as {{ float_type() }}) as won_before_call,
        cast(coalesce(calls.open_commit, 0) as {{ float_type() }}) as open_commit,
        cast(coalesce(calls.open_best_case, 0) as {{ float_type() }}) as open_best_case,
        {{ add_days(add_months('grid.target_month', 1), -1) }} <= {{ as_of() }} as is_scored,
        cast(coalesce(bookings.bookings, 0) as {{ float_type() }}) as bookings_or_zero
    from grid
    left join series
        on grid.series_level = series.series_level and grid.series_key = series.series_key
    left join calls
        on
            grid.series_level = calls.series_level
            and grid.series_key = calls.series_key
            and grid.call_date = calls.call_date
            and grid.target_month = calls.target_month
    left join won_before_call
        on
            grid.series_level = won_before_call.series_level
            and grid.series_key = won_before_call.series_key
            and grid.call_date = won_before_call.call_date
            and grid.target_month = won_before_call.target_month
    left join bookings
        on
            grid.series_level = bookings.level
            and grid.series_key = bookings.series_key
            and grid.target_month = bookings.month_start

),

calls_scored as (

    select
        *,
        won_before_call + open_commit as commit_call,
        won_before_call + open_commit + open_best_case as best_case_call,
        case when is_scored then bookings_or_zero end as actual
    from joined

)

select
    series_id,
    series_level as level,
    series_key,
    series_name,
    call_date,
    horizon,
    target_month,
    won_before_call,
    open_commit,
    open_best_case,
    commit_call as commit_amount,
    best_case_call as best_case_amount,
    is_scored,
    actual,
    actual - commit_call as commit_error,
    abs(actual - commit_call) as commit_abs_error,
    {{ ratio('abs(actual - commit_call)', 'abs(actual)') }} as commit_abs_pct_error,
    actual - best_case_call as best_case_error,
    abs(actual - best_case_call) as best_case_abs_error,
    {{ ratio('abs(actual - best_case_call)', 'abs(actual)') }} as best_case_abs_pct_error
from calls_scored
