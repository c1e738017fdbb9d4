{{ config(materialized='table') }}

-- One row per OpportunityHistory row that is not deleted, was written on or before as_of and belongs
-- to a live opportunity (not deleted, created on or before as_of), in the order the CRM wrote them,
-- with the previous row's values of the same opportunity beside it. Rows written at the same instant
-- are ordered by their position in the export. Whether the stage is closed or won, and its rank,
-- come from int_stages__resolved (the CRM's stage flags, never the stage name).
with history as (

    select * from {{ ref('stg_crm__opportunity_histories') }}
    where
        not is_deleted
        and opportunity_id is not null
        and created_at is not null
        and cast(created_at as date) <= {{ as_of() }}

),

opportunities as (

    select opportunity_id from {{ ref('int_opportunities__converted') }}

),

stages as (

    select * from {{ ref('int_stages__resolved') }}

),

ordered as (

    select
        history.opportunity_id,
        history.opportunity_history_id,
        history.created_at as changed_at,
        cast(history.created_at as date) as change_date,
        history.stage_name,
        stages.stage_rank,
        stages.is_closed as is_closed_stage,
        stages.is_won as is_won_stage,
        history.amount as amount_local,
        history.probability_pct,
        history.close_date,
        history.forecast_category,
        row_number() over (
            partition by history.opportunity_id
            order by history.created_at, history._row_number
        ) as change_number
    from history
    inner join opportunities
        on history.opportunity_id = opportunities.opportunity_id
    left join stages
        on history.stage_name = stages.stage_name

)

select
    ordered.*,
    lag(ordered.stage_name) over by_opportunity as previous_stage_name,
    lag(ordered.stage_rank) over by_opportunity as previous_stage_rank,
    lag(ordered.is_closed_stage) over by_opportunity as was_closed_stage,
    lag(ordered.amount_local) over by_opportunity as previous_amount_local,
    lag(ordered.close_date) over by_opportunity as previous_close_date,
    lead(ordered.change_date) over by_opportunity as next_change_date
from ordered
window by_opportunity as (partition by ordered.opportunity_id order by ordered.change_number)
