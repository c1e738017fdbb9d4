-- One row per level, period type, tenth of the period elapsed (0 = before the period started) and method
-- ('projection', 'commit_call', 'best_case_call', 'weighted_pipeline_call', 'time_series'): how each call
-- of a period's bookings converges through the period, over mart_projection_accuracy. WAPE = sum of
-- absolute errors / sum of actuals; bias = sum(call - actual) / sum(actual); coverage of the projection's
-- 80% and 95% intervals (the projection's rows only). The time-series rows count only periods it forecast.
with scored as (

    select * from {{ ref('mart_projection_accuracy') }}

),

{#- each method: its name, the column with its call and the column with its absolute error -#}
{%- set methods = [
    ('projection', 'projection', 'projection_abs_error'),
    ('commit_call', 'commit_call', 'commit_abs_error'),
    ('best_case_call', 'best_case_call', 'best_case_abs_error'),
    ('weighted_pipeline_call', 'weighted_pipeline_call', 'weighted_pipeline_abs_error'),
    ('time_series', 'time_series_forecast', 'time_series_abs_error'),
] %}

long_methods as (
    {% for method, call, error in methods %}
        select
            level,
            period_type,
            tenth_of_period_elapsed,
            '{{ method }}' as method,
            series_id,
            period_start,
            actual,
            {{ call }} as call_amount,
            {{ error }} as abs_error,
            {%- if method == 'projection' %}
                cast(case when is_in_80 then 1 else 0 end as {{ float_type() }}) as in_80,
                cast(case when is_in_95 then 1 else 0 end as {{ float_type() }}) as in_95
            {%- else %}
                cast(null as {{ float_type() }}) as in_80,
                cast(null as {{ float_type() }}) as in_95
            {%- endif %}
        from scored
        {%- if method == 'time_series' %}
            where time_series_forecast is not null
        {%- endif %}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

final as (

    select
        level,
        period_type,
        tenth_of_period_elapsed,
        method,
        count(*) as n_scored,
        count(distinct series_id) as n_series,
        count(distinct period_start) as n_periods,
        sum(actual) as sum_actual,
        sum(call_amount) as sum_call,
        {{ ratio('sum(abs_error)', 'sum(abs(actual))') }} as wape,
        {{ ratio('sum(call_amount - actual)', 'sum(actual)') }} as bias,
        avg(in_80) as coverage_80,
        avg(in_95) as coverage_95
    from long_methods
    group by level, period_type, tenth_of_period_elapsed, method

)

select * from final
