-- One row per level, horizon and model: accuracy of the machine forecasts over scored rows of
-- mart_forecast_accuracy. WAPE = sum |error| / sum |actual|; MAPE = mean APE over rows with actual > 0;
-- bias = sum(forecast - actual) / sum(actual) (positive = over-forecast); MASE = mean scaled_error;
-- coverage_80/95 = share of actuals inside the interval.
with scored as (

    select * from {{ ref('mart_forecast_accuracy') }}
    where is_scored

)

select
    level,
    horizon,
    model,
    count(*) as n_scored,
    count(distinct series_id) as n_series,
    count(distinct as_of_date) as n_runs,
    sum(actual) as sum_actual,
    sum(forecast) as sum_forecast,
    {{ accuracy_metrics('forecast') }},
    avg(scaled_error) as mase,
    avg(cast(case when inside_80 then 1 else 0 end as {{ float_type() }})) as coverage_80,
    avg(cast(case when inside_95 then 1 else 0 end as {{ float_type() }})) as coverage_95
from scored
group by level, horizon, model
