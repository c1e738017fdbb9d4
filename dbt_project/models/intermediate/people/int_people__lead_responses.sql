-- A table, not a view: several models and tests read it, and as a view each would recompute it
-- (benchmarks/results.md).
{{ config(materialized='table') }}

-- One row per lead that is not deleted and was created on or before as_of, with the lead owner's
-- first touch (a completed call or email, or a customer-facing meeting, whose WhoId is the lead and
-- whose owner is the lead's owner, at or after the lead's creation and on or before as_of).
-- Task times are Task.CreatedDate (ActivityDate has no time); meeting times are StartDateTime.
with leads as (

    select * from {{ ref('stg_crm__leads') }}
    where
        not is_deleted
        and cast(created_at as date) <= {{ as_of() }}

),

touches as (

    select
        leads.lead_id,
        min(activities.activity_at) as first_touch_at
    from leads
    inner join {{ ref('int_people__activities') }} as activities
        on
            leads.lead_id = activities.who_id
            and leads.owner_id = activities.owner_id
            and leads.created_at <= activities.activity_at
    group by leads.lead_id

),

joined as (

    select
        leads.lead_id,
        leads.created_at,
        cast(leads.created_at as date) as created_date,
        touches.first_touch_at,
        coalesce(leads.owner_id, '(none)') as owner_id,
        coalesce(leads.lead_source, 'Unknown') as lead_source,
        coalesce(leads.is_converted, false)
        and leads.converted_date <= {{ as_of() }} as is_converted,
        case
            when leads.is_converted and leads.converted_date <= {{ as_of() }} then leads.converted_date
        end as converted_date
    from leads
    left join touches
        on leads.lead_id = touches.lead_id

)

select
    lead_id,
    owner_id,
    lead_source,
    created_at,
    created_date,
    {{ month_start('created_date') }} as lead_month,
    first_touch_at,
    first_touch_at is not null as is_contacted,
    case
        when first_touch_at is not null then {{ people_hours_between('created_at', 'first_touch_at') }}
    end as response_hours,
    is_converted,
    converted_date,
    case
        when is_converted then {{ days_between('created_date', 'converted_date') }}
    end as days_to_convert
from joined
