-- One row per activity owner and ISO week (Monday start) with at least one customer-facing activity
-- (completed call or email, customer-facing meeting) on or before as_of. A table rebuilt every run
-- (open_opportunity_count follows the deals' current owner and close date, so past weeks change); the
-- activities themselves come from the incremental int_people__activity_records. No owner attributes
-- (name, team, region) are stored: join dim_reps / int_users__enriched.
with activities as (

    select * from {{ ref('int_people__activities') }}

),

weekly as (

    select
        owner_id,
        week_start,
        {{ people_activity_counts() }},
        count(case when is_prospect_meeting then 1 end) as prospect_meeting_count,
        sum(case when activity_type = 'meeting' then selling_minutes else 0 end) as meeting_minutes,
        sum(selling_minutes) as selling_minutes
    from activities
    group by owner_id, week_start

),

open_opportunities as (

    -- Deals of the owner open at some point in the week: created by the week's end and not closed
    -- before the week's start (current owner, current close date).
    select
        weekly.owner_id,
        weekly.week_start,
        count(opportunities.opportunity_id) as open_opportunity_count
    from weekly
    inner join {{ ref('fct_opportunities') }} as opportunities
        on
            weekly.owner_id = opportunities.owner_id
            and {{ add_days('weekly.week_start', 6) }} >= opportunities.created_date
            and (
                opportunities.status = 'open'
                or weekly.week_start <= opportunities.close_date
            )
    group by weekly.owner_id, weekly.week_start

)

select
    weekly.owner_id,
    weekly.week_start,
    {{ add_days('weekly.week_start', 6) }} as week_end,
    cast(weekly.call_count as integer) as call_count,
    cast(weekly.email_count as integer) as email_count,
    cast(weekly.meeting_count as integer) as meeting_count,
    cast(weekly.prospect_meeting_count as integer) as prospect_meeting_count,
    cast(coalesce(open_opportunities.open_opportunity_count, 0) as integer) as open_opportunity_count,
    {{ ratio('weekly.meeting_count', 'open_opportunities.open_opportunity_count') }}
        as meetings_per_open_opportunity,
    cast(weekly.selling_minutes / 60.0 as {{ float_type() }}) as selling_hours,
    cast({{ people_working_hours_per_week() }} as {{ float_type() }}) as working_hours,
    {{ ratio('weekly.selling_minutes / 60.0', people_working_hours_per_week()) }} as time_spent_selling_share
from weekly
left join open_opportunities
    on
        weekly.owner_id = open_opportunities.owner_id
        and weekly.week_start = open_opportunities.week_start
