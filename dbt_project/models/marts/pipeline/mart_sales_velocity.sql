-- One row per fiscal month and owner with a deal qualified or a qualified deal closed (on or before
-- as_of) in the month. A deal is qualified once it reaches an open stage of stage_rank >= var
-- pipeline_qualified_stage_rank (2 = Qualification), or is won; it counts as qualified in the month it
-- first did (a won deal that never showed a qualified stage: its close month). Team and region are the
-- owner's on the month's first day (the team of the day, as mart_rep_performance); current_team_id,
-- current_team_name and current_region the owner's today. The count and sum columns are additive (roll up
-- to team by summing them).
{%- set owner_month = ['owner_id', 'fiscal_month'] %}
with {{ import_ctes(opportunities='fct_opportunities', history='int_opportunity_history__summary',
                    owners='int_users__enriched', assignments='int_users__assignment_history') }},

deals as (

    select
        opportunities.opportunity_id,
        opportunities.owner_id,
        opportunities.owner_name,
        opportunities.is_closed,
        opportunities.is_won,
        opportunities.close_date,
        opportunities.amount,
        opportunities.sales_cycle_days,
        coalesce(
            history.first_qualified_stage_date,
            case when opportunities.is_won then opportunities.close_date end
        ) as qualified_date
    from opportunities
    left join history
        on opportunities.opportunity_id = history.opportunity_id

),

qualified as (

    select
        owner_id,
        {{ month_start('qualified_date') }} as fiscal_month,
        count(*) as qualified_count
    from deals
    where
        qualified_date is not null
        and qualified_date <= {{ as_of() }}
    group by owner_id, {{ month_start('qualified_date') }}

),

closed as (

    select
        owner_id,
        {{ month_start('close_date') }} as fiscal_month,
        sum(case when is_won then 1 else 0 end) as won_count,
        sum(case when is_won then 0 else 1 end) as lost_count,
        coalesce(sum(case when is_won then amount end), 0) as won_amount,
        sum(case when is_won and amount is not null then 1 else 0 end) as won_with_amount_count,
        coalesce(sum(case when is_won then sales_cycle_days end), 0) as won_cycle_days_sum,
        sum(case when is_won and sales_cycle_days is not null then 1 else 0 end) as won_with_cycle_count
    from deals
    where
        is_closed
        and qualified_date is not null
        and close_date <= {{ as_of() }}
    group by owner_id, {{ month_start('close_date') }}

),

keys as (

    select
        owner_id,
        fiscal_month
    from qualified
    union
    select
        owner_id,
        fiscal_month
    from closed

),

owner_names as (

    select distinct
        owner_id,
        owner_name
    from deals

),

joined as (

    select
        keys.fiscal_month,
        keys.owner_id,
        owner_names.owner_name,
        -- one row per owner and month: the owner's team of the month's first day
        {{ attribution_columns() }},
        coalesce(qualified.qualified_count, 0) as qualified_count,
        coalesce(closed.won_count, 0) as won_count,
        coalesce(closed.lost_count, 0) as lost_count,
        cast(coalesce(closed.won_amount, 0) as {{ numeric_type() }}) as won_amount,
        coalesce(closed.won_with_amount_count, 0) as won_with_amount_count,
        coalesce(closed.won_cycle_days_sum, 0) as won_cycle_days_sum,
        coalesce(closed.won_with_cycle_count, 0) as won_with_cycle_count
    from keys
    left join qualified
        on {{ equal_keys('keys', 'qualified', owner_month) }}
    left join closed
        on {{ equal_keys('keys', 'closed', owner_month) }}
    left join owner_names
        on keys.owner_id = owner_names.owner_id
    {{ join_owner_and_assignment('keys', 'keys.fiscal_month') }}

),

rates as (

    select
        *,
        {{ ratio('won_count', 'won_count + lost_count') }} as win_rate,
        {{ ratio('won_amount', 'won_with_amount_count') }} as average_deal_size,
        {{ ratio('won_cycle_days_sum', 'won_with_cycle_count') }} as average_cycle_days
    from joined

)

select
    fiscal_month,
    {{ fiscal_quarter('fiscal_month') }} as fiscal_quarter,
    {{ fiscal_year('fiscal_month') }} as fiscal_year,
    {{ rep_attribute_columns(current=true) }},
    qualified_count,
    won_count,
    lost_count,
    won_amount,
    won_with_amount_count,
    won_cycle_days_sum,
    won_with_cycle_count,
    win_rate,
    average_deal_size,
    average_cycle_days,
    {{ ratio('qualified_count * win_rate * average_deal_size', 'average_cycle_days') }} as sales_velocity
from rates
