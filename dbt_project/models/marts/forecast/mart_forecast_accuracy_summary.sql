-- One row per level, horizon and model: accuracy of the machine forecasts over scored rows of
-- mart_forecast_accuracy, live and backtest (track-record) rows together. model = 'selected' pools the
-- published forecast of every series (is_selected rows, whichever method each series chose), so it reads
-- beside each method's own rows (e.g. the primary Prophet, stored for every series).
-- WAPE = sum |error| / sum |actual|; MAPE = mean APE over rows with actual > 0;
-- bias = sum(forecast - actual) / sum(actual) (positive = over-forecast); MASE = mean scaled_error;
-- coverage_80/95 = share of actuals inside the interval; n_backtest = scored rows from the backtest.
with scored as (

    select * from {{ ref('mart_forecast_accuracy') }}
    where is_scored

),

{#- what a scored row carries into the summary, for each model and again under 'selected' -#}
{%- set carried = ['series_id', 'as_of_date', 'is_backtest', 'actual', 'forecast', 'abs_error',
                   'abs_pct_error', 'scaled_error', 'inside_80', 'inside_95'] %}

pooled as (

    select
        level,
        horizon,
        model,
        {{ carried | join(', ') }}
    from scored
    union all
    select
        level,
        horizon,
        'selected' as model,
        {{ carried | join(', ') }}
    from scored
    where is_selected

),

final as (

    select
        level,
        horizon,
        model,
        count(*) as n_scored,
        sum(case when is_backtest then 1 else 0 end) as n_backtest,
        count(distinct series_id) as n_series,
        count(distinct as_of_date) as n_runs,
        sum(actual) as sum_actual,
        sum(forecast) as sum_forecast,
        {{ accuracy_metrics('forecast') }},
        avg(scaled_error) as mase,
        avg(cast(case when inside_80 then 1 else 0 end as {{ float_type() }})) as coverage_80,
        avg(cast(case when inside_95 then 1 else 0 end as {{ float_type() }})) as coverage_95
    from pooled
    group by level, horizon, model

)

select * from final
