-- One row per as_of_date, series and period (month or fiscal quarter) of a closed period (period_end on or
-- before as_of): the in-quarter projection made that day beside what was booked in the period (actual, from
-- fct_bookings_monthly: a period's months added up; no bookings row counts as 0), the three calls made the
-- same day (commit, best case, weighted pipeline) and the time-series forecast of the period where one
-- exists (forecasts.fct_forecasts from the latest run before the period started, every month of the
-- period present). tenth_of_period_elapsed: 0 before the period starts, then 1-10 (ceil of tenths).
with projections as (

    select * from {{ ref('stg_forecasts__period_projections') }}
    where period_end <= {{ as_of() }}

),

bookings as (

    select * from {{ ref('fct_bookings_monthly') }}

),

forecasts as (

    -- the published forecast only (Prophet's own rows beside it are scored in mart_forecast_accuracy)
    select * from {{ ref('stg_forecasts__forecasts') }}
    where is_selected

),

periods as (

    select distinct
        series_id,
        period_type,
        period_start,
        period_end
    from projections

),

actuals as (

    select
        periods.series_id,
        periods.period_type,
        periods.period_start,
        sum(coalesce(bookings.bookings, 0)) as actual
    from periods
    left join bookings
        on
            periods.series_id = bookings.series_id
            and bookings.month_start between periods.period_start and periods.period_end
    group by periods.series_id, periods.period_type, periods.period_start

),

forecast_runs as (

    -- the latest forecast run before each period started, per series
    select
        periods.series_id,
        periods.period_type,
        periods.period_start,
        max(forecasts.as_of_date) as forecast_as_of
    from periods
    inner join forecasts
        on
            periods.series_id = forecasts.series_id
            and periods.period_start > forecasts.as_of_date
            and forecasts.period_start between periods.period_start and periods.period_end
    group by periods.series_id, periods.period_type, periods.period_start

),

time_series as (

    -- that run's forecast of the period: its months added up, only when it forecast every month of it
    select
        forecast_runs.series_id,
        forecast_runs.period_type,
        forecast_runs.period_start,
        case
            when
                count(distinct forecasts.period_start)
                = max(case when forecast_runs.period_type = 'month' then 1 else 3 end)
                then sum(forecasts.forecast)
        end as time_series_forecast
    from forecast_runs
    inner join periods
        on
            forecast_runs.series_id = periods.series_id
            and forecast_runs.period_type = periods.period_type
            and forecast_runs.period_start = periods.period_start
    inner join forecasts
        on
            forecast_runs.series_id = forecasts.series_id
            and forecast_runs.forecast_as_of = forecasts.as_of_date
            and forecasts.period_start between periods.period_start and periods.period_end
    group by forecast_runs.series_id, forecast_runs.period_type, forecast_runs.period_start

),

joined as (

    select
        projections.as_of_date,
        projections.series_level as level,
        projections.series_id,
        projections.series_key,
        projections.period_type,
        projections.period_start,
        projections.period_end,
        projections.days_into_period,
        projections.pct_of_period_elapsed,
        case
            when projections.days_into_period <= 0 then 0
            else cast(ceil(projections.pct_of_period_elapsed * 10) as integer)
        end as tenth_of_period_elapsed,
        projections.is_replay,
        cast(actuals.actual as {{ float_type() }}) as actual,
        projections.won_to_date,
        projections.open_pipeline_expected,
        projections.new_pipeline_expected,
        projections.projection,
        projections.lower_80,
        projections.upper_80,
        projections.lower_95,
        projections.upper_95,
        projections.commit_call,
        projections.best_case_call,
        projections.weighted_pipeline_call,
        cast(time_series.time_series_forecast as {{ float_type() }}) as time_series_forecast
    from projections
    inner join actuals
        on
            projections.series_id = actuals.series_id
            and projections.period_type = actuals.period_type
            and projections.period_start = actuals.period_start
    left join time_series
        on
            projections.series_id = time_series.series_id
            and projections.period_type = time_series.period_type
            and projections.period_start = time_series.period_start

),

final as (

    select
        *,
        abs(projection - actual) as projection_abs_error,
        abs(commit_call - actual) as commit_abs_error,
        abs(best_case_call - actual) as best_case_abs_error,
        abs(weighted_pipeline_call - actual) as weighted_pipeline_abs_error,
        abs(time_series_forecast - actual) as time_series_abs_error,
        actual between lower_80 and upper_80 as is_in_80,
        actual between lower_95 and upper_95 as is_in_95
    from joined

)

select * from final
