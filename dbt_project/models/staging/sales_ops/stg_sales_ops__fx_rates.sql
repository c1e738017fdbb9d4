with source as (

    select * from {{ source('sales_ops', 'fx_rates') }}

),

renamed as (

    select
        {{ clean_code('currency_iso_code') }} as currency_iso_code,
        {{ to_number('rate', 10) }} as rate,
        {{ to_date('valid_from') }} as valid_from,
        _source_file,
        _row_number
        {{ custom_columns(source('sales_ops', 'fx_rates')) }}  -- noqa: LT02
    from source

)

select * from renamed
