with source as (

    select * from {{ source('crm', 'users') }}

),

renamed as (

    select
        {{ clean_string('id') }} as user_id,
        {{ clean_string('name') }} as user_name,
        {{ clean_string('email') }} as email,
        {{ clean_string('manager_id') }} as manager_id,
        {{ clean_string('user_role_id') }} as user_role_id,
        {{ clean_string('division') }} as division,
        {{ clean_string('department') }} as department,
        {{ to_boolean('is_active') }} as is_active,
        {{ to_timestamp('created_date') }} as created_at,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'users')) }}  -- noqa: LT02
    from source

)

select * from renamed
