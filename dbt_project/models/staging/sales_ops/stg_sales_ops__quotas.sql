with source as (

    select * from {{ source('sales_ops', 'quotas') }}

),

renamed as (

    select
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('owner_email') }} as owner_email,
        {{ to_date('period_start') }} as period_start,
        {{ to_number('quota_amount') }} as quota_amount,
        _source_file,
        _row_number
        {{ custom_columns(source('sales_ops', 'quotas')) }}  -- noqa: LT02
    from source

)

select * from renamed
