-- One row per level, horizon and call type ('commit', 'best_case'): accuracy of the reps' own calls over
-- scored rows of mart_forecast_calls_accuracy, with the same definitions as
-- mart_forecast_accuracy_summary (call_type plays the part of model): WAPE, MAPE (actual > 0), bias =
-- sum(call - actual) / sum(actual). A call has no interval and no naive scale: no coverage or MASE.
with scored as (

    select * from {{ ref('mart_forecast_calls_accuracy') }}
    where is_scored

),

long_calls as (

    select
        level,
        horizon,
        'commit' as call_type,
        series_id,
        call_date,
        actual,
        commit_amount as call_amount,
        commit_abs_error as abs_error,
        commit_abs_pct_error as abs_pct_error
    from scored
    union all
    select
        level,
        horizon,
        'best_case' as call_type,
        series_id,
        call_date,
        actual,
        best_case_amount as call_amount,
        best_case_abs_error as abs_error,
        best_case_abs_pct_error as abs_pct_error
    from scored

)

select
    level,
    horizon,
    call_type,
    count(*) as n_scored,
    count(distinct series_id) as n_series,
    count(distinct call_date) as n_calls,
    sum(actual) as sum_actual,
    sum(call_amount) as sum_call,
    {{ accuracy_metrics('call_amount') }}
from long_calls
group by level, horizon, call_type
