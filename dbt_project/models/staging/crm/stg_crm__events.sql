with source as (

    select * from {{ source('crm', 'events') }}

),

renamed as (

    select
        {{ clean_string('id') }} as event_id,
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('who_id') }} as who_id,
        {{ clean_string('what_id') }} as what_id,
        {{ to_timestamp('start_date_time') }} as start_at,
        {{ to_timestamp('end_date_time') }} as end_at,
        {{ to_integer('duration_in_minutes') }} as duration_minutes,
        {{ clean_string('type') }} as event_type,
        {{ clean_string('subject') }} as subject,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number,
        _run_id
        {{ custom_columns(source('crm', 'events')) }}  -- noqa: LT02
    from source

)

select * from renamed
