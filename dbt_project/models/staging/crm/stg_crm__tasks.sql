with source as (

    select * from {{ source('crm', 'tasks') }}

),

renamed as (

    select
        {{ clean_string('id') }} as task_id,
        {{ clean_string('owner_id') }} as owner_id,
        {{ clean_string('who_id') }} as who_id,
        {{ clean_string('what_id') }} as what_id,
        {{ to_date('activity_date') }} as activity_date,
        {{ clean_string('task_subtype') }} as task_subtype,
        {{ clean_string('status') }} as task_status,
        {{ to_timestamp('created_date') }} as created_at,
        coalesce({{ to_boolean('is_deleted') }}, false) as is_deleted,
        _source_file,
        _row_number,
        _run_id
        {{ custom_columns(source('crm', 'tasks')) }}  -- noqa: LT02
    from source

)

select * from renamed
