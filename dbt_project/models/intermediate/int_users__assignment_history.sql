-- A table, not a view: int_opportunities__converted and the quota marts join it on a date range.
{{ config(materialized='table') }}

-- One row per user and assignment: manager (team), role, division (region) and department from valid_from
-- to valid_to (exclusive; null: still in force); versions that repeat the one before are one
-- assignment. Versions come from the snapshot of each night's User export (snp_crm__users), and for
-- the dates before a user's first snapshot from sales operations' user_assignments.csv (ids and names
-- are clean strings, never empty, so '' stands for a missing one when versions are compared). A user's
-- first known assignment also holds for every date before it (valid_from null), so a date has at most
-- one assignment per user; a date in a gap the file leaves (a row's valid_to before the next row) has
-- none, and the models credit it to the current assignment.
{%- set band_names = (var('segment_bands') or []) | map(attribute='name') | map('string') | list %}
{%- set by_date = "over (partition by user_id order by starts_on)" %}
{#- what an assignment is made of: a change of any of them starts a new one #}
{%- set attributes = ['manager_id', 'user_role_id', 'division', 'department'] %}
{%- set band_list = "'" ~ (band_names | map('replace', "'", "''") | join("', '")) ~ "'" %}
with snapshot_versions as (

    -- a version closed on the day it was recorded was superseded by a re-run of that date: the re-run wins
    select
        user_id,
        {{ attributes | join(',\n        ') }},
        cast(dbt_valid_from as date) as starts_on,
        cast(null as date) as ends_before,
        'snapshot' as recorded_in,
        dbt_scd_id as tie_breaker
    from {{ ref('snp_crm__users') }}
    where coalesce(dbt_valid_to <> dbt_valid_from, true)

),

first_snapshot as (

    select
        user_id,
        min(starts_on) as first_recorded_on
    from snapshot_versions
    group by user_id

),

file_versions as (

    -- the file tells the past; from a user's first snapshot on, the nightly User export does
    select
        assignments.user_id,
        assignments.manager_id,
        assignments.user_role_id,
        assignments.division,
        assignments.department,
        assignments.valid_from as starts_on,
        assignments.valid_to as ends_before,
        'user_assignments' as recorded_in,
        cast(assignments._row_number as varchar) as tie_breaker
    from {{ ref('stg_sales_ops__user_assignments') }} as assignments
    left join first_snapshot
        on assignments.user_id = first_snapshot.user_id
    where
        assignments.user_id is not null
        and assignments.valid_from is not null
        and (first_snapshot.first_recorded_on is null or assignments.valid_from < first_snapshot.first_recorded_on)

),

versions as (

    select * from snapshot_versions
    union all
    select * from file_versions

),

one_per_day as (

    -- one version per user and day (two can only come from backfills recording the same day twice)
    select *
    from (
        select
            *,
            row_number() over (partition by user_id, starts_on order by tie_breaker desc) as day_rank
        from versions
    ) as ranked
    where day_rank = 1

),

bounded as (

    -- each version ends where the next starts, or earlier where the file says so (a gap)
    select
        user_id,
        {{ attributes | join(',\n        ') }},
        starts_on,
        recorded_in,
        case
            when ends_before is not null and (next_starts_on is null or ends_before < next_starts_on)
                then ends_before
            else next_starts_on
        end as ends_on
    from (
        select
            *,
            lead(starts_on) over (partition by user_id order by starts_on) as next_starts_on
        from one_per_day
    ) as with_next

),

flagged as (

    -- a version that repeats the one before it without a gap (the file's last row and the first night's
    -- export, or a night that recorded no change) continues it
    select
        *,
        case
            when lag(starts_on) {{ by_date }} is null then 1
            when lag(ends_on) {{ by_date }} < starts_on then 1
            when coalesce(lag(manager_id) {{ by_date }}, '') <> coalesce(manager_id, '') then 1
            when coalesce(lag(user_role_id) {{ by_date }}, '') <> coalesce(user_role_id, '') then 1
            when coalesce(lag(division) {{ by_date }}, '') <> coalesce(division, '') then 1
            when coalesce(lag(department) {{ by_date }}, '') <> coalesce(department, '') then 1
            else 0
        end as starts_assignment
    from bounded

),

numbered as (

    select
        *,
        cast(sum(starts_assignment) over (
            partition by user_id order by starts_on rows between unbounded preceding and current row
        ) as integer) as assignment_number
    from flagged

),

ordered as (

    select
        user_id,
        assignment_number as version_number,
        max(manager_id) as manager_id,
        max(user_role_id) as user_role_id,
        max(division) as division,
        max(department) as department,
        min(starts_on) as starts_on,
        case when count(*) = count(ends_on) then max(ends_on) end as ends_on,
        min(case when starts_assignment = 1 then recorded_in end) as recorded_in
    from numbered
    group by user_id, assignment_number

),

users as (

    select * from {{ ref('stg_crm__users') }}

),

roles as (

    select * from {{ ref('stg_crm__user_roles') }}

),

final as (

    select
        ordered.user_id as rep_id,
        ordered.version_number,
        case when ordered.version_number > 1 then ordered.starts_on end as valid_from,
        ordered.ends_on as valid_to,
        ordered.starts_on as recorded_from,
        ordered.recorded_in,
        ordered.manager_id,
        managers.user_name as manager_name,
        ordered.manager_id as team_id,
        coalesce(managers.user_name, ordered.manager_id, {{ no_team_name() }}) as team_name,
        {{ region_for('ordered.division', 'roles.user_role_name') }} as region,
        ordered.division,
        ordered.user_role_id,
        roles.user_role_name,
        ordered.department,
        case
            when ordered.department in ({{ band_list }}) then ordered.department
            else {{ unknown_segment() }}
        end as segment
    from ordered
    left join users as managers
        on ordered.manager_id = managers.user_id
    left join roles
        on ordered.user_role_id = roles.user_role_id

)

select * from final
