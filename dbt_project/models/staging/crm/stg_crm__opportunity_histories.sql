with source as (

    select * from {{ source('crm', 'opportunity_histories') }}

),

renamed as (

    select
        {{ clean_string('id') }} as opportunity_history_id,
        {{ clean_string('opportunity_id') }} as opportunity_id,
        {{ clean_string('stage_name') }} as stage_name,
        {{ to_number('amount') }} as amount,
        {{ to_number('probability') }} as probability_pct,
        {{ to_date('close_date') }} as close_date,
        {{ clean_string('forecast_category') }} as forecast_category,
        {{ to_timestamp('created_date') }} as created_at,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        {{ to_boolean('is_closed') }} as is_closed,
        {{ to_boolean('is_won') }} as is_won,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'opportunity_histories')) }}  -- noqa: LT02
    from source

)

select * from renamed
