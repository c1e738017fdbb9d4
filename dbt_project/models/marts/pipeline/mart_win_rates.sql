-- One row per fiscal month, owner, segment, lead source and deal type with at least one deal closed
-- in the month (close date in the month and on or before as_of). Team and region are the owner's on
-- the close date (fct_opportunities.team_id, the team of the day); current_team_id, current_team_name
-- and current_region the owner's today; segment is the account's. Counts and amounts are additive:
-- roll up by summing them and recompute the rates.
{%- set grain = ['fiscal_month', 'owner_id', 'owner_name', 'team_id', 'team_name', 'region',
                 'current_team_id', 'current_team_name', 'current_region', 'segment', 'lead_source',
                 'opportunity_type'] %}
with closed_deals as (

    select
        close_fiscal_month as fiscal_month,
        {{ rep_attribute_columns(current=true) }},
        segment,
        is_won,
        amount,
        coalesce(lead_source, 'Unknown') as lead_source,
        coalesce(opportunity_type, 'Unknown') as opportunity_type
    from {{ ref('fct_opportunities') }}
    where
        is_closed
        and close_date <= {{ as_of() }}

),

grouped as (

    select
        {%- for column in grain %}
            {{ column }},
        {%- endfor %}
        sum(case when is_won then 1 else 0 end) as won_count,
        sum(case when is_won then 0 else 1 end) as lost_count,
        cast(coalesce(sum(case when is_won then amount end), 0) as {{ numeric_type() }}) as won_amount,
        cast(coalesce(sum(case when not is_won then amount end), 0) as {{ numeric_type() }}) as lost_amount
    from closed_deals
    group by {{ grain | join(', ') }}

)

select
    fiscal_month,
    {{ fiscal_quarter('fiscal_month') }} as fiscal_quarter,
    {{ fiscal_year('fiscal_month') }} as fiscal_year,
    {{ rep_attribute_columns(current=true) }},
    segment,
    lead_source,
    opportunity_type,
    won_count,
    lost_count,
    won_count + lost_count as closed_count,
    won_amount,
    lost_amount,
    won_amount + lost_amount as closed_amount,
    {{ win_rates() }}
from grouped
