-- One row per forecast run (as_of_date), series, model and target month, from the forecaster's table:
-- the published (is_selected) forecast, Prophet's own beside it, and backtest (is_backtest) track-record rows.
-- Rename and cast only.
with source as (

    select * from {{ source('forecasts', 'fct_forecasts') }}

),

renamed as (

    select
        cast(as_of_date as date) as as_of_date,
        cast(run_id as {{ string_type() }}) as run_id,
        cast(series_id as {{ string_type() }}) as series_id,
        cast(level as {{ string_type() }}) as series_level,
        cast(series_key as {{ string_type() }}) as series_key,
        cast(period_start as date) as period_start,
        cast(horizon as integer) as horizon,
        cast(yhat as {{ float_type() }}) as forecast,
        cast(yhat_lower_80 as {{ float_type() }}) as lower_80,
        cast(yhat_upper_80 as {{ float_type() }}) as upper_80,
        cast(yhat_lower_95 as {{ float_type() }}) as lower_95,
        cast(yhat_upper_95 as {{ float_type() }}) as upper_95,
        cast(model as {{ string_type() }}) as model,
        cast(model_params as {{ string_type() }}) as model_params,
        cast(training_start as date) as training_start,
        cast(training_end as date) as training_end,
        cast(code_version as {{ string_type() }}) as code_version,
        cast(is_selected as boolean) as is_selected,
        cast(is_backtest as boolean) as is_backtest
    from source

)

select * from renamed
