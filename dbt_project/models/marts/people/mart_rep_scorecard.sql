-- One row per owner and fiscal month of mart_rep_performance (owners with a quota or a closed deal,
-- from their first such month up to the month of as_of): the rep's score card. Metrics are defined
-- where they are computed (mart_rep_performance, mart_quota_attainment, mart_lead_funnel,
-- mart_activity) or below for the deal averages. Team and region are the rep's on the month's first day
-- (as mart_rep_performance), so the ranks in team and region are among the reps of the team of the day.
{%- set owner_month = ['owner_id', 'fiscal_month'] %}
with rep_months as (

    select * from {{ ref('mart_rep_performance') }}

),

attainment as (

    select
        owner_id,
        period_start as fiscal_month,
        pace,
        open_pipeline_amount,
        pipeline_coverage
    from {{ ref('mart_quota_attainment') }}
    where
        level = {{ hierarchy_level('rep') }}
        and period_type = 'month'

),

won_deals as (

    select
        owner_id,
        close_fiscal_month as fiscal_month,
        avg(cast(sales_cycle_days as {{ float_type() }})) as avg_sales_cycle_days,
        avg(cast(amount as {{ float_type() }})) as avg_deal_size
    from {{ ref('fct_opportunities') }}
    where
        status = 'won'
        and close_date <= {{ as_of() }}
    group by owner_id, close_fiscal_month

),

activity as (

    select
        owner_id,
        fiscal_month,
        {{ people_activity_counts() }}
    from {{ ref('int_people__activities') }}
    group by owner_id, fiscal_month

),

lead_response as (

    select
        owner_id,
        lead_month as fiscal_month,
        count(*) as lead_count,
        percentile_cont(0.5) within group (order by response_hours) as median_response_hours
    from {{ ref('int_people__lead_responses') }}
    group by owner_id, lead_month

),

joined as (

    select
        {{ rep_attribute_columns('rep_months', current=true) }},
        rep_months.fiscal_month,
        rep_months.fiscal_quarter,
        rep_months.fiscal_year,
        rep_months.quota_amount,
        rep_months.won_amount,
        rep_months.attainment,
        attainment.pace,
        rep_months.won_count,
        rep_months.lost_count,
        rep_months.win_rate,
        won_deals.avg_sales_cycle_days,
        won_deals.avg_deal_size,
        attainment.pipeline_coverage,
        lead_response.median_response_hours,
        coalesce(attainment.open_pipeline_amount, 0) as open_pipeline_amount,
        coalesce(activity.call_count, 0) as call_count,
        coalesce(activity.email_count, 0) as email_count,
        coalesce(activity.meeting_count, 0) as meeting_count,
        coalesce(lead_response.lead_count, 0) as lead_count
    from rep_months
    left join attainment
        on {{ equal_keys('rep_months', 'attainment', owner_month) }}
    left join won_deals
        on {{ equal_keys('rep_months', 'won_deals', owner_month) }}
    left join activity
        on {{ equal_keys('rep_months', 'activity', owner_month) }}
    left join lead_response
        on {{ equal_keys('rep_months', 'lead_response', owner_month) }}

)

select
    {{ rep_attribute_columns(current=true) }},
    fiscal_month,
    fiscal_quarter,
    fiscal_year,
    quota_amount,
    won_amount,
    attainment,
    pace,
    won_count,
    lost_count,
    win_rate,
    avg_sales_cycle_days,
    avg_deal_size,
    open_pipeline_amount,
    pipeline_coverage,
    cast(call_count as integer) as call_count,
    cast(email_count as integer) as email_count,
    cast(meeting_count as integer) as meeting_count,
    cast(lead_count as integer) as lead_count,
    cast(median_response_hours as {{ float_type() }}) as median_response_hours,
    case
        when attainment is not null
            then rank() over (
                    partition by fiscal_month, team_name, attainment is null
                    order by attainment desc
                )
    end as attainment_rank_in_team,
    case
        when attainment is not null
            then rank() over (
                    partition by fiscal_month, region, attainment is null
                    order by attainment desc
                )
    end as attainment_rank_in_region
from joined
