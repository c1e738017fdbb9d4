-- fct_bookings_monthly: reps' bookings summed within a team equal the team's, teams summed equal the
-- company's, regions and segments summed equal the company's, month by month. Rows returned = mismatches.
-- The series' teams are the reps' current ones (int_forecast__bookings_by_series): one team per rep.
with opportunities as (

    select distinct
        coalesce(cast(owner_id as {{ string_type() }}), {{ hierarchy_missing_member() }}) as owner_key,
        coalesce(cast(current_team_id as {{ string_type() }}), {{ hierarchy_missing_member() }}) as team_key
    from {{ ref('fct_opportunities') }}
    where status = 'won'

),

bookings as (

    select * from {{ ref('fct_bookings_monthly') }}

),

reps_by_team as (

    select
        opportunities.team_key,
        bookings.month_start,
        sum(bookings.bookings) as rep_bookings
    from bookings
    inner join opportunities
        on bookings.series_key = opportunities.owner_key
    where bookings.level = {{ hierarchy_level('rep') }}
    group by opportunities.team_key, bookings.month_start

),

team_check as (

    select
        'rep vs team' as check_name,
        coalesce(team.series_key, reps_by_team.team_key) as series_key,
        coalesce(team.month_start, reps_by_team.month_start) as month_start,
        coalesce(team.bookings, 0) as expected,
        coalesce(reps_by_team.rep_bookings, 0) as actual
    from (select * from bookings where level = {{ hierarchy_level('team') }}) as team
    full outer join reps_by_team
        on team.series_key = reps_by_team.team_key and team.month_start = reps_by_team.month_start

),

level_sums as (

    select
        level,
        month_start,
        sum(bookings) as level_bookings
    from bookings
    where level in {{ hierarchy_level_list(['team', 'region', 'segment', 'rep']) }}
    group by level, month_start

),

company_check as (

    select
        level_sums.level || ' vs company' as check_name,
        {{ hierarchy_company_key() }} as series_key,
        level_sums.month_start,
        coalesce(company.bookings, 0) as expected,
        level_sums.level_bookings as actual
    from level_sums
    left join (select * from bookings where level = {{ hierarchy_level('company') }}) as company
        on level_sums.month_start = company.month_start

)

select * from team_check
where abs(expected - actual) > 0.01
union all
select * from company_check
where abs(expected - actual) > 0.01
