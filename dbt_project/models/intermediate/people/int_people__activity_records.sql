{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key='activity_id',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where {{ changed_in_load('tasks', 'activity_id') }} or {{ changed_in_load('events', 'activity_id') }}{% endif %}"
        ]
    )
}}

-- One row per customer-facing activity, whatever its date (int_people__activities keeps those on or
-- before as_of): completed calls and emails (Task, by TaskSubtype) and customer-facing meetings
-- (Event whose Type is not internal, see macro people_internal_event_types). Deleted records are
-- left out. selling_minutes = the meeting's DurationInMinutes, or the fixed minutes per call / per
-- email (vars people_minutes_per_call, people_minutes_per_email).
-- Incremental: a run deletes and rebuilds only the activities whose Task or Event row the latest load
-- inserted, updated or deleted (raw._changes), so the table equals a full build. --full-refresh after
-- changing one of the vars above.
with tasks as (

    select
        task_id as activity_id,
        owner_id,
        who_id,
        what_id,
        lower(task_subtype) as activity_type,
        coalesce(activity_date, cast(created_at as date)) as activity_date,
        created_at as activity_at,
        case
            when lower(task_subtype) = 'call' then {{ people_minutes_per_call() }}
            else {{ people_minutes_per_email() }}
        end as selling_minutes
    from {{ ref('stg_crm__tasks') }}
    where
        not is_deleted
        {% if is_incremental() %}and {{ changed_in_load('tasks', 'task_id') }}{% endif %}
        and lower(task_subtype) in ('call', 'email')
        and (task_status is null or task_status not in {{ people_open_task_statuses() }})

),

events as (

    select
        event_id as activity_id,
        owner_id,
        who_id,
        what_id,
        'meeting' as activity_type,
        cast(start_at as date) as activity_date,
        start_at as activity_at,
        coalesce(duration_minutes, 0) as selling_minutes
    from {{ ref('stg_crm__events') }}
    where
        not is_deleted
        {% if is_incremental() %}and {{ changed_in_load('events', 'event_id') }}{% endif %}
        and event_type is not null
        and event_type not in {{ people_internal_event_types() }}

),

activities as (

    -- tasks and events select the same columns in the same order
    select * from tasks
    union all
    select * from events

)

select
    activity_id,
    owner_id,
    who_id,
    what_id,
    activity_type,
    activity_date,
    {{ people_week_start('activity_date') }} as week_start,
    {{ month_start('activity_date') }} as fiscal_month,
    activity_at,
    cast(selling_minutes as {{ float_type() }}) as selling_minutes,
    activity_type = 'meeting'
    and ({{ people_is_lead_id('who_id') }} or {{ people_is_opportunity_id('what_id') }}) as is_prospect_meeting
from activities
where owner_id is not null
