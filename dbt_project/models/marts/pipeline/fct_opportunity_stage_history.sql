{{
    stage_rules_incremental(
        unique_key='opportunity_id',
        prune=[
            "delete from {{ this }} where opportunity_id not in (select opportunity_id from {{ ref('int_opportunity_history__changes') }})"
        ]
    )
}}

-- depends_on: {{ ref('int_stages__resolved') }}
-- depends_on: {{ ref('stg_crm__opportunity_histories') }}
-- One row per opportunity and stage interval: consecutive OpportunityHistory rows of the same stage
-- are one interval, from the first of them (entered_at) to the first row of the next stage
-- (exited_at). Incremental: a run recomputes every interval of the opportunities whose history
-- changed - a history row the latest load updated (raw._changes), or a number of history rows up to
-- as_of that differs from the one built (rows added, deleted, or brought in or out by as_of) - and of
-- those whose current interval is an open stage (its days_in_stage grows with as_of); the rows of
-- those opportunities are replaced (delete+insert on opportunity_id). The post-hook removes
-- opportunities that are no longer live. The result equals a full build; when the stage rules
-- (int_stages__resolved) changed since the table was built, the pre-hook empties it and it is rebuilt
-- whole (stage_rules_hook).
with changes as (

    select * from {{ ref('int_opportunity_history__changes') }}

),

scoped as (

    -- The linter renders the incremental branch with placeholder relations and misreads its indent.
    select changes.*
    from changes
    -- noqa: disable=LT02
    {%- if is_incremental() %}
    where changes.opportunity_id in (
        select history.opportunity_id
        from {{ ref('stg_crm__opportunity_histories') }} as history
        where {{ changed_in_load('opportunity_histories', 'history.opportunity_history_id') }}
        union
        select coalesce(now_counts.opportunity_id, built_counts.opportunity_id) as opportunity_id
        from (
            select
                counted.opportunity_id,
                count(*) as history_rows
            from changes as counted
            group by counted.opportunity_id
        ) as now_counts
        full outer join (
            select
                built.opportunity_id,
                sum(built.history_row_count) as history_rows
            from {{ this }} as built
            group by built.opportunity_id
        ) as built_counts
            on now_counts.opportunity_id = built_counts.opportunity_id
        where now_counts.history_rows is distinct from built_counts.history_rows
        union
        select current_intervals.opportunity_id
        from {{ this }} as current_intervals
        where current_intervals.is_current and not current_intervals.is_closed_stage
    )
    {%- endif %}
    -- noqa: enable=LT02

),

marked as (

    select
        *,
        case when previous_stage_name is null or stage_name <> previous_stage_name then 1 else 0 end as is_new_interval
    from scoped

),

numbered as (

    select
        *,
        sum(is_new_interval) over (
            partition by opportunity_id
            order by change_number
            rows between unbounded preceding and current row
        ) as interval_number
    from marked

),

intervals as (

    select
        opportunity_id,
        interval_number,
        min(stage_name) as stage_name,
        min(stage_rank) as stage_rank,
        bool_or(is_closed_stage) as is_closed_stage,
        min(changed_at) as entered_at,
        count(*) as history_row_count
    from numbered
    group by opportunity_id, interval_number

),

with_next as (

    select
        *,
        lead(entered_at) over (partition by opportunity_id order by interval_number) as exited_at,
        lead(stage_name) over (partition by opportunity_id order by interval_number) as next_stage,
        lead(stage_rank) over (partition by opportunity_id order by interval_number) as next_stage_rank
    from intervals

)

select
    opportunity_id || '-' || cast(interval_number as {{ string_type() }}) as stage_interval_id,
    opportunity_id,
    cast(interval_number as integer) as interval_number,
    stage_name,
    stage_rank,
    is_closed_stage,
    entered_at,
    exited_at,
    cast(entered_at as date) as entered_date,
    cast(exited_at as date) as exited_date,
    case
        when exited_at is not null
            then {{ days_between('cast(entered_at as date)', 'cast(exited_at as date)') }}
        when not is_closed_stage
            then {{ days_between('cast(entered_at as date)', as_of()) }}
    end as days_in_stage,
    next_stage,
    next_stage_rank,
    exited_at is null as is_current,
    history_row_count
from with_next
