-- One row per forecast run (as_of_date, series_id, model) and training window: the seasonal-naive scale
-- for MASE, the in-sample mean absolute lag-12 difference of the series' monthly bookings
-- (fct_bookings_monthly) over the run's training window (training_start..training_end, months present
-- in the series); lag 1 when the window has fewer than 13 months. Null when no pair of months fits.
{%- set run_key = ['as_of_date', 'series_id', 'model', 'training_start', 'training_end'] %}
with runs as (

    select distinct
        as_of_date,
        series_id,
        model,
        {{ month_start('training_start') }} as training_start,
        {{ month_start('training_end') }} as training_end
    from {{ ref('stg_forecasts__forecasts') }}

),

runs_with_lag as (

    select
        *,
        case
            when
                12 * ({{ date_part_int('year', 'training_end') }} - {{ date_part_int('year', 'training_start') }})
                + {{ date_part_int('month', 'training_end') }} - {{ date_part_int('month', 'training_start') }}
                + 1 >= 13
                then 12
            else 1
        end as naive_lag
    from runs

),

bookings as (

    select * from {{ ref('fct_bookings_monthly') }}

),

diffs as (

    select
        {%- for column in run_key %}
            runs_with_lag.{{ column }},
        {%- endfor %}
        abs(cast(current_month.bookings - lagged_month.bookings as {{ float_type() }})) as abs_naive_diff
    from runs_with_lag
    inner join bookings as current_month
        on
            runs_with_lag.series_id = current_month.series_id
            and current_month.month_start between runs_with_lag.training_start and runs_with_lag.training_end
    inner join bookings as lagged_month
        on
            current_month.series_id = lagged_month.series_id
            and runs_with_lag.training_start <= lagged_month.month_start
            and current_month.month_start = {{ add_months('lagged_month.month_start', 'runs_with_lag.naive_lag') }}

)

select
    {%- for column in run_key %}
        runs_with_lag.{{ column }},
    {%- endfor %}
    runs_with_lag.naive_lag,
    count(diffs.abs_naive_diff) as naive_pair_count,
    avg(diffs.abs_naive_diff) as naive_scale
from runs_with_lag
left join diffs
    on {{ equal_keys('runs_with_lag', 'diffs', run_key) }}
group by
    {%- for column in run_key %}
        runs_with_lag.{{ column }},
    {%- endfor %}
    runs_with_lag.naive_lag
