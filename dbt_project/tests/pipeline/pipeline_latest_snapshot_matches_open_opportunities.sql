{{ config(severity='warn') }}

-- The snapshot of as_of (rebuilt from OpportunityHistory) holds exactly the open deals of
-- fct_opportunities (from Opportunity.csv), with the same stage. A row here means the two exports
-- disagree about a deal (a data-quality warning, not a model error).
with latest as (

    select * from {{ ref('fct_pipeline_snapshots') }}
    where snapshot_date = {{ as_of() }}

),

open_deals as (

    select * from {{ ref('fct_opportunities') }}
    where status = 'open'

)

select
    coalesce(latest.opportunity_id, open_deals.opportunity_id) as opportunity_id,
    latest.stage_name as snapshot_stage_name,
    open_deals.stage_name as opportunity_stage_name
from latest
full outer join open_deals
    on latest.opportunity_id = open_deals.opportunity_id
where
    latest.opportunity_id is null
    or open_deals.opportunity_id is null
    or latest.stage_name <> open_deals.stage_name
