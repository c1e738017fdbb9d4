with source as (

    select * from {{ source('crm', 'opportunities') }}

),

renamed as (

    select
        {{ clean_string('id') }} as opportunity_id,
        {{ clean_string('account_id') }} as account_id,
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('name') }} as opportunity_name,
        {{ clean_string('stage_name') }} as stage_name,
        {{ to_number('amount') }} as amount,
        {{ to_number('probability') }} as probability_pct,
        {{ clean_string('forecast_category_name') }} as forecast_category,
        {{ to_date('close_date') }} as close_date,
        {{ to_timestamp('created_date') }} as created_at,
        {{ to_boolean('is_closed') }} as is_closed,
        {{ to_boolean('is_won') }} as is_won,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        {{ clean_string('type') }} as opportunity_type,
        {{ clean_string('lead_source') }} as lead_source,
        {{ clean_code('currency_iso_code') }} as currency_iso_code,
        {{ to_timestamp('last_modified_date') }} as last_modified_at,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'opportunities')) }}  -- noqa: LT02
    from source

)

select * from renamed
