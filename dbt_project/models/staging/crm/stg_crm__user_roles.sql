with source as (

    select * from {{ source('crm', 'user_roles') }}

),

renamed as (

    select
        {{ clean_string('id') }} as user_role_id,
        {{ clean_string('name') }} as user_role_name,
        {{ clean_string('parent_role_id') }} as parent_role_id,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'user_roles')) }}  -- noqa: LT02
    from source

)

select * from renamed
