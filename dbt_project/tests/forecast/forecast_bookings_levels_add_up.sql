-- fct_bookings_monthly: reps' bookings summed within a team equal the team's, teams summed equal the
-- company's, regions and segments summed equal the company's, month by month. Rows returned = mismatches.
-- The series' teams are the team of the day (int_forecast__bookings_by_series: the owner's team on the close
-- date), so a rep who moved mid-month books in two teams that month: each rep-month is split by the teams of
-- its deals (fct_opportunities), and the split must add up to the rep's series as well as to each team's.
with won as (

    select
        coalesce(cast(owner_id as {{ string_type() }}), {{ hierarchy_missing_member() }}) as owner_key,
        coalesce(cast(team_id as {{ string_type() }}), {{ hierarchy_missing_member() }}) as team_key,
        {{ month_start('close_date') }} as month_start,
        sum(coalesce(amount, 0)) as won_amount
    from {{ ref('fct_opportunities') }}
    where status = 'won' and close_date is not null and close_date <= {{ as_of() }}
    group by
        coalesce(cast(owner_id as {{ string_type() }}), {{ hierarchy_missing_member() }}),
        coalesce(cast(team_id as {{ string_type() }}), {{ hierarchy_missing_member() }}),
        {{ month_start('close_date') }}

),

bookings as (

    select * from {{ ref('fct_bookings_monthly') }}

),

rep_check as (

    -- each rep series' month against the sum of its deals over the teams they count in
    select
        'rep vs its teams' as check_name,
        coalesce(rep.series_key, split.owner_key) as series_key,
        coalesce(rep.month_start, split.month_start) as month_start,
        coalesce(rep.bookings, 0) as expected,
        coalesce(split.won_amount, 0) as actual
    from (select * from bookings where level = {{ hierarchy_level('rep') }}) as rep
    full outer join (
        select
            owner_key,
            month_start,
            sum(won_amount) as won_amount
        from won
        group by owner_key, month_start
    ) as split
        on rep.series_key = split.owner_key and rep.month_start = split.month_start

),

reps_by_team as (

    -- the reps' deals of a month summed by the team of the day they count in
    select
        team_key,
        month_start,
        sum(won_amount) as rep_bookings
    from won
    group by team_key, month_start

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

select * from rep_check
where abs(expected - actual) > 0.01
union all
select * from team_check
where abs(expected - actual) > 0.01
union all
select * from company_check
where abs(expected - actual) > 0.01
