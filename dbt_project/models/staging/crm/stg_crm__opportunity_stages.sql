with source as (

    select * from {{ source('crm', 'opportunity_stages') }}

),

renamed as (

    select
        {{ clean_string('id') }} as opportunity_stage_id,
        {{ clean_string('master_label') }} as stage_label,
        {{ clean_string('api_name') }} as stage_api_name,
        {{ to_boolean('is_closed') }} as is_closed,
        {{ to_boolean('is_won') }} as is_won,
        {{ to_number('default_probability') }} as default_probability_pct,
        {{ to_integer('sort_order') }} as sort_order,
        {{ to_boolean('is_active') }} as is_active,
        {{ clean_string('forecast_category_name') }} as forecast_category,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'opportunity_stages')) }}  -- noqa: LT02
    from source

)

select * from renamed
