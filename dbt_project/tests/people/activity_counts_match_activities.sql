{{ config(severity="warn") }}
-- mart_activity (incremental) holds exactly the activities of int_people__activities: the number of
-- calls, emails and meetings per owner and week agree. Returns the owner-weeks that disagree.
with expected as (

    select
        owner_id,
        week_start,
        count(case when activity_type = 'call' then 1 end) as call_count,
        count(case when activity_type = 'email' then 1 end) as email_count,
        count(case when activity_type = 'meeting' then 1 end) as meeting_count
    from {{ ref('int_people__activities') }}
    group by owner_id, week_start

)

select
    coalesce(expected.owner_id, mart.owner_id) as owner_id,
    coalesce(expected.week_start, mart.week_start) as week_start
from expected
full outer join {{ ref('mart_activity') }} as mart
    on
        expected.owner_id = mart.owner_id
        and expected.week_start = mart.week_start
where
    expected.owner_id is null
    or mart.owner_id is null
    or expected.call_count <> mart.call_count
    or expected.email_count <> mart.email_count
    or expected.meeting_count <> mart.meeting_count
