-- One row per as_of_date, series and period (month or fiscal quarter), from the projection step's table.
-- Rename and cast only.
with source as (

    select * from {{ source('forecasts', 'fct_period_projections') }}

),

renamed as (

    select
        cast(as_of_date as date) as as_of_date,
        cast(run_id as {{ string_type() }}) as run_id,
        cast(level as {{ string_type() }}) as series_level,
        cast(series_id as {{ string_type() }}) as series_id,
        cast(series_key as {{ string_type() }}) as series_key,
        cast(period_type as {{ string_type() }}) as period_type,
        cast(period_start as date) as period_start,
        cast(period_end as date) as period_end,
        cast(days_into_period as integer) as days_into_period,
        cast(pct_of_period_elapsed as {{ float_type() }}) as pct_of_period_elapsed,
        cast(won_to_date as {{ float_type() }}) as won_to_date,
        cast(open_pipeline_expected as {{ float_type() }}) as open_pipeline_expected,
        cast(new_pipeline_expected as {{ float_type() }}) as new_pipeline_expected,
        cast(projection as {{ float_type() }}) as projection,
        cast(lower_80 as {{ float_type() }}) as lower_80,
        cast(upper_80 as {{ float_type() }}) as upper_80,
        cast(lower_95 as {{ float_type() }}) as lower_95,
        cast(upper_95 as {{ float_type() }}) as upper_95,
        cast(commit_call as {{ float_type() }}) as commit_call,
        cast(best_case_call as {{ float_type() }}) as best_case_call,
        cast(weighted_pipeline_call as {{ float_type() }}) as weighted_pipeline_call,
        cast(open_deals as integer) as open_deals,
        cast(model_trained_on as date) as model_trained_on,
        cast(is_replay as boolean) as is_replay,
        cast(code_version as {{ string_type() }}) as code_version
    from source

)

select * from renamed
