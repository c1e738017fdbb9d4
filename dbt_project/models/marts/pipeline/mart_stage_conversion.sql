-- One row per cohort month (month a deal was created) and open funnel stage (the open, ranked
-- stages of int_stages__resolved): how many deals of the cohort reached the stage, moved past it and
-- were won, and how long they stayed in it. A deal reached every stage up to the highest open stage
-- its history shows (a skipped stage counts as reached and advanced); a won deal reached and advanced
-- every stage.
with {{
    import_ctes(
        opportunities='fct_opportunities',
        history='int_opportunity_history__summary',
        intervals='fct_opportunity_stage_history'
    )
}},

stages as (

    -- the open funnel: open stages with a rank (from OpportunityStage.SortOrder or var stage_order)
    select
        stage_rank,
        stage_name
    from {{ ref('int_stages__resolved') }}
    where is_open and is_ranked

),

deals as (

    select
        opportunities.opportunity_id,
        {{ month_start('opportunities.created_date') }} as cohort_month,
        opportunities.is_won,
        case
            when opportunities.is_won then (select max(stages.stage_rank) as last_rank from stages)
            else
                greatest(
                    coalesce(history.max_open_stage_rank, 0),
                    case when not opportunities.is_closed then opportunities.stage_rank else 0 end
                )
        end as reached_rank
    from opportunities
    left join history
        on opportunities.opportunity_id = history.opportunity_id
    where opportunities.created_date is not null

),

cohorts as (

    select distinct cohort_month from deals

),

funnel as (

    select
        deals.cohort_month,
        stages.stage_rank,
        sum(case when deals.reached_rank >= stages.stage_rank then 1 else 0 end) as reached_count,
        sum(
            case when deals.reached_rank > stages.stage_rank or deals.is_won then 1 else 0 end
        ) as advanced_count,
        sum(case when deals.is_won then 1 else 0 end) as won_count
    from deals
    cross join stages
    group by deals.cohort_month, stages.stage_rank

),

durations as (

    select
        deals.cohort_month,
        intervals.stage_rank,
        count(*) as completed_interval_count,
        {{ pipeline_median('intervals.days_in_stage') }} as median_days_in_stage
    from intervals
    inner join deals
        on intervals.opportunity_id = deals.opportunity_id
    where intervals.exited_at is not null
    group by deals.cohort_month, intervals.stage_rank

)

select
    cohorts.cohort_month,
    stages.stage_rank,
    stages.stage_name,
    coalesce(funnel.reached_count, 0) as reached_count,
    coalesce(funnel.advanced_count, 0) as advanced_count,
    coalesce(funnel.won_count, 0) as won_count,
    {{ ratio('funnel.advanced_count', 'funnel.reached_count') }} as conversion_to_next_rate,
    {{ ratio('funnel.won_count', 'funnel.reached_count') }} as conversion_to_won_rate,
    coalesce(durations.completed_interval_count, 0) as completed_interval_count,
    cast(durations.median_days_in_stage as {{ float_type() }}) as median_days_in_stage
from cohorts
cross join stages
left join funnel
    on
        cohorts.cohort_month = funnel.cohort_month
        and stages.stage_rank = funnel.stage_rank
left join durations
    on
        cohorts.cohort_month = durations.cohort_month
        and stages.stage_rank = durations.stage_rank
