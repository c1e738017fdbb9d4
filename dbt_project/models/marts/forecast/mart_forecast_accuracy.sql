-- One row per forecast run (as_of_date), series, model and target month (period_start): the machine
-- forecast beside the actual bookings of fct_bookings_monthly. Published (is_selected) and Prophet rows,
-- live and backtest (is_backtest: the track record, as_of_date = its origin) are all scored.
-- Scored (actual not null) once the target
-- month has ended on or before as_of; a target month with no row in the series counts as 0 bookings.
-- scaled_error = abs_error / naive_scale (seasonal-naive MASE scale of the run's training window).
with {{
    import_ctes(
        forecasts='stg_forecasts__forecasts',
        bookings='fct_bookings_monthly',
        scales='int_forecast__naive_scale'
    )
}},

joined as (

    select
        forecasts.as_of_date,
        forecasts.run_id,
        forecasts.series_id,
        forecasts.series_level,
        forecasts.series_key,
        forecasts.model,
        forecasts.period_start,
        forecasts.horizon,
        forecasts.forecast,
        forecasts.lower_80,
        forecasts.upper_80,
        forecasts.lower_95,
        forecasts.upper_95,
        forecasts.training_start,
        forecasts.training_end,
        forecasts.is_selected,
        forecasts.is_backtest,
        scales.naive_lag,
        scales.naive_scale,
        {{ add_days(add_months('forecasts.period_start', 1), -1) }} <= {{ as_of() }} as is_scored,
        cast(coalesce(bookings.bookings, 0) as {{ float_type() }}) as bookings_or_zero
    from forecasts
    left join bookings
        on
            forecasts.series_id = bookings.series_id
            and forecasts.period_start = bookings.month_start
    left join scales
        on
            forecasts.as_of_date = scales.as_of_date
            and forecasts.series_id = scales.series_id
            and forecasts.model = scales.model
            and {{ month_start('forecasts.training_start') }} = scales.training_start
            and {{ month_start('forecasts.training_end') }} = scales.training_end

),

scored as (

    select
        *,
        case when is_scored then bookings_or_zero end as actual
    from joined

)

select
    as_of_date,
    run_id,
    series_id,
    series_level as level,
    series_key,
    model,
    period_start,
    horizon,
    training_start,
    training_end,
    is_selected,
    is_backtest,
    forecast,
    lower_80,
    upper_80,
    lower_95,
    upper_95,
    is_scored,
    actual,
    naive_lag,
    naive_scale,
    actual - forecast as error,
    abs(actual - forecast) as abs_error,
    {{ ratio('abs(actual - forecast)', 'abs(actual)') }} as abs_pct_error,
    case when actual is not null then actual between lower_80 and upper_80 end as inside_80,
    case when actual is not null then actual between lower_95 and upper_95 end as inside_95,
    {{ ratio('abs(actual - forecast)', 'naive_scale') }} as scaled_error
from scored
