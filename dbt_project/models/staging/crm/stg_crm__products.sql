with source as (

    select * from {{ source('crm', 'products') }}

),

renamed as (

    select
        {{ clean_string('id') }} as product_id,
        {{ clean_string('name') }} as product_name,
        {{ clean_string('product_code') }} as product_code,
        {{ clean_string('family') }} as product_family,
        {{ to_boolean('is_active') }} as is_active,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'products')) }}  -- noqa: LT02
    from source

)

select * from renamed
