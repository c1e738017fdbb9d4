with source as (

    select * from {{ source('sales_ops', 'user_assignments') }}

),

renamed as (

    select
        {{ clean_string('user_id') }} as user_id,
        {{ to_date('valid_from') }} as valid_from,
        {{ to_date('valid_to') }} as valid_to,
        {{ clean_string('manager_id') }} as manager_id,
        {{ clean_string('user_role_id') }} as user_role_id,
        {{ clean_string('division') }} as division,
        {{ clean_string('department') }} as department,
        _source_file,
        _row_number
        {{ custom_columns(source('sales_ops', 'user_assignments')) }}  -- noqa: LT02
    from source

)

select * from renamed
