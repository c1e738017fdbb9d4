{{ config(severity='error') }}

-- The snapshot of as_of (rebuilt from OpportunityHistory, open/closed from int_stages__resolved) holds
-- exactly the open deals of fct_opportunities (from Opportunity.csv's IsClosed), with the same stage.
-- A row here means the stage flags or the two exports disagree about a deal: the build fails, nothing
-- is published. Only deals the history can speak for are compared: deals with a history row on or
-- before as_of and none after it (a run for an earlier as_of sees the export's later state in
-- Opportunity.csv; a deal without history has no snapshot).
with latest as (

    select * from {{ ref('fct_pipeline_snapshots') }}
    where snapshot_date = {{ as_of() }}

),

later_history as (

    select distinct opportunity_id from {{ ref('stg_crm__opportunity_histories') }}
    where not is_deleted and cast(created_at as date) > {{ as_of() }}

),

comparable as (

    select distinct changes.opportunity_id
    from {{ ref('int_opportunity_history__changes') }} as changes
    where changes.opportunity_id not in (select later_history.opportunity_id from later_history)

),

open_deals as (

    select * from {{ ref('fct_opportunities') }}
    where
        status = 'open'
        and opportunity_id in (select comparable.opportunity_id from comparable)

),

latest_comparable as (

    select * from latest
    where opportunity_id in (select comparable.opportunity_id from comparable)

)

select
    coalesce(latest_comparable.opportunity_id, open_deals.opportunity_id) as opportunity_id,
    latest_comparable.stage_name as snapshot_stage_name,
    open_deals.stage_name as opportunity_stage_name
from latest_comparable
full outer join open_deals
    on latest_comparable.opportunity_id = open_deals.opportunity_id
where
    latest_comparable.opportunity_id is null
    or open_deals.opportunity_id is null
    or latest_comparable.stage_name <> open_deals.stage_name
