-- One row per level (owner, team, region, company), level_id, period_type (month, quarter, year) and
-- period_start, for every fiscal period that has started by as_of and in which the level has a
-- quota, a booking or open pipeline. Team and region are the owner's current ones.
{%- set grain = ['level', 'level_id', 'owner_id', 'team_id', 'team_name', 'region', 'period_type', 'period_start'] %}
with {{ import_ctes(owner_months='int_people__owner_months', owners='int_users__enriched') }},

period_types as (

    select 'month' as period_type
    union all
    select 'quarter' as period_type
    union all
    select 'year' as period_type

),

owner_periods as (

    -- Each owner-month counts in its month, its fiscal quarter and its fiscal year.
    select
        owner_months.owner_id,
        coalesce(owners.team_id, {{ hierarchy_missing_member() }}) as team_id,
        coalesce(owners.team_name, {{ no_team_name() }}) as team_name,
        coalesce(owners.region, {{ unassigned_region() }}) as region,
        period_types.period_type,
        case period_types.period_type
            when 'month' then owner_months.fiscal_month
            when 'quarter' then {{ people_fiscal_quarter_start('owner_months.fiscal_month') }}
            else {{ people_fiscal_year_start('owner_months.fiscal_month') }}
        end as period_start,
        owner_months.quota_amount,
        owner_months.booked_amount,
        owner_months.won_count,
        owner_months.open_pipeline_amount,
        owner_months.open_pipeline_count
    from owner_months
    left join owners
        on owner_months.owner_id = owners.user_id
    cross join period_types

),

levels as (
    {{ fan_out_levels(
        'owner_periods',
        ['period_type', 'period_start', 'quota_amount', 'booked_amount', 'won_count', 'open_pipeline_amount',
         'open_pipeline_count'],
        levels=['company', 'region', 'team', 'rep'],
        level_as='level',
        key_as='level_id',
        dimensions=['owner_id', 'team_id', 'team_name', 'region']
    ) }}
),

aggregated as (

    select
        {%- for column in grain %}
            {{ column }},
        {%- endfor %}
        cast(sum(quota_amount) as {{ numeric_type() }}) as quota_amount,
        cast(sum(booked_amount) as {{ numeric_type() }}) as booked_amount,
        cast(sum(won_count) as integer) as won_count,
        cast(sum(open_pipeline_amount) as {{ numeric_type() }}) as open_pipeline_amount,
        cast(sum(open_pipeline_count) as integer) as open_pipeline_count
    from levels
    where period_start <= {{ as_of() }}
    group by {{ grain | join(', ') }}

),

bounded as (

    select
        *,
        case period_type
            when 'month' then {{ add_days(add_months('period_start', 1), -1) }}
            when 'quarter' then {{ add_days(add_months('period_start', 3), -1) }}
            else {{ add_days(add_months('period_start', 12), -1) }}
        end as period_end
    from aggregated

),

measured as (

    select
        *,
        {{ days_between('period_start', 'period_end') }} + 1 as period_days,
        case
            when period_end <= {{ as_of() }} then {{ days_between('period_start', 'period_end') }} + 1
            else {{ days_between('period_start', as_of()) }} + 1
        end as elapsed_days,
        case
            when quota_amount > booked_amount then quota_amount - booked_amount
            else cast(0 as {{ numeric_type() }})
        end as remaining_quota_amount
    from bounded

)

select
    level,
    level_id,
    owner_id,
    team_id,
    team_name,
    region,
    period_type,
    period_start,
    period_end,
    {{ fiscal_quarter('period_start') }} as fiscal_quarter,
    {{ fiscal_year('period_start') }} as fiscal_year,
    period_end < {{ as_of() }} as is_closed_period,
    quota_amount,
    booked_amount,
    won_count,
    {{ ratio('booked_amount', 'quota_amount') }} as attainment,
    {{ ratio('elapsed_days', 'period_days') }} as elapsed_share,
    {{ ratio(ratio('booked_amount', 'quota_amount'), ratio('elapsed_days', 'period_days')) }} as pace,
    cast(quota_amount - booked_amount as {{ numeric_type() }}) as gap_to_quota,
    remaining_quota_amount,
    open_pipeline_amount,
    open_pipeline_count,
    {{ ratio('open_pipeline_amount', 'remaining_quota_amount') }} as pipeline_coverage
from measured
