with source as (

    select * from {{ source('crm', 'accounts') }}

),

renamed as (

    select
        {{ clean_string('id') }} as account_id,
        {{ clean_string('name') }} as account_name,
        {{ clean_string('industry') }} as industry,
        {{ to_integer('number_of_employees') }} as number_of_employees,
        {{ to_number('annual_revenue') }} as annual_revenue,
        {{ clean_string('billing_country') }} as billing_country,
        {{ clean_string('parent_id') }} as parent_account_id,
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('type') }} as account_type,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'accounts')) }}  -- noqa: LT02
    from source

)

select * from renamed
