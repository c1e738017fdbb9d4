with source as (

    select * from {{ source('crm', 'contacts') }}

),

renamed as (

    select
        {{ clean_string('id') }} as contact_id,
        {{ clean_string('account_id') }} as account_id,
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('first_name') }} as first_name,
        {{ clean_string('last_name') }} as last_name,
        {{ clean_string('email') }} as email,
        {{ clean_string('title') }} as title,
        {{ to_timestamp('created_date') }} as created_at,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number
        {{ custom_columns(source('crm', 'contacts')) }}  -- noqa: LT02
    from source

)

select * from renamed
