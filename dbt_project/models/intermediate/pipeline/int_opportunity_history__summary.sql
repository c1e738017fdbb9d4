-- A table, not a view: several models and tests read it, and as a view each would recompute it
-- (benchmarks/results.md).
{{ config(materialized='table') }}

-- One row per live opportunity that has at least one OpportunityHistory row (on or before as_of):
-- what its history says about stage moves, close-date pushes and amount changes.
with changes as (

    select * from {{ ref('int_opportunity_history__changes') }}

),

flagged as (

    select
        opportunity_id,
        change_number,
        change_date,
        stage_rank,
        is_closed_stage,
        is_won_stage,
        previous_stage_name is null or stage_name <> previous_stage_name as is_stage_change,
        previous_close_date is not null and close_date > previous_close_date as is_close_date_push,
        previous_close_date is not null and close_date < previous_close_date as is_close_date_pull,
        change_number > 1 and (
            amount_local <> previous_amount_local
            or (amount_local is null and previous_amount_local is not null)
            or (amount_local is not null and previous_amount_local is null)
        ) as is_amount_change,
        coalesce(was_closed_stage and not is_closed_stage, false) as is_reopen,
        -- a forward move into an open stage more than one rank ahead skips the stages in between
        case
            when
                not is_closed_stage
                and previous_stage_rank is not null
                and stage_rank > previous_stage_rank + 1
                then stage_rank - previous_stage_rank - 1
            else 0
        end as skipped_stages
    from changes

)

select
    opportunity_id,
    count(*) as history_row_count,
    min(change_date) as first_stage_date,
    max(case when is_stage_change then change_date end) as last_stage_change_date,
    sum(case when is_close_date_push then 1 else 0 end) as close_date_push_count,
    sum(case when is_close_date_pull then 1 else 0 end) as close_date_pull_count,
    sum(case when is_amount_change then 1 else 0 end) as amount_change_count,
    sum(case when is_reopen then 1 else 0 end) as reopen_count,
    sum(skipped_stages) as stage_skip_count,
    coalesce(max(case when not is_closed_stage then stage_rank end), 0) as max_open_stage_rank,
    coalesce(max(case when is_won_stage then 1 else 0 end), 0) = 1 as has_reached_won_stage,
    min(
        case
            when stage_rank >= {{ pipeline_qualified_stage_rank() }} and (is_won_stage or not is_closed_stage)
                then change_date
        end
    )
        as first_qualified_stage_date
from flagged
group by opportunity_id
