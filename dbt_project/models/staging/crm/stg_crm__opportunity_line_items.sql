with source as (

    select * from {{ source('crm', 'opportunity_line_items') }}

),

renamed as (

    select
        {{ clean_string('id') }} as line_item_id,
        {{ clean_string('opportunity_id') }} as opportunity_id,
        {{ clean_string('product2_id') }} as product_id,
        {{ to_number('quantity') }} as quantity,
        {{ to_number('unit_price') }} as unit_price,
        {{ to_number('total_price') }} as total_price,
        {{ to_timestamp('created_date') }} as created_at,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'opportunity_line_items')) }}  -- noqa: LT02
    from source

)

select * from renamed
