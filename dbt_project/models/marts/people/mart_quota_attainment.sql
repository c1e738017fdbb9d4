-- One row per level (owner, team, region, company), level_id, period_type (month, quarter, year) and
-- period_start, for every fiscal period that has started by as_of and in which the level has a
-- quota, a booking or open pipeline. Each fact counts in the team and region of its own date
-- (int_people__owner_months: a quota in the owner's team on the quota month's first day, a booking in the
-- team on its close date, open pipeline in today's team), so a rep who moved keeps earlier quotas and
-- bookings in the earlier team. A rep's row names the team and region of the rep's latest fact in the
-- period, and the rep's team and region today as current_*.
{%- set grain = ['level', 'level_id', 'period_type', 'period_start'] %}
{%- set dimensions = ['owner_id', 'team_id', 'team_name', 'region'] %}
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
        owner_months.fiscal_month,
        owner_months.attributed_on,
        coalesce(owner_months.team_id, {{ hierarchy_missing_member() }}) as team_id,
        owner_months.team_name,
        owner_months.region,
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
    cross join period_types

),

levels as (
    {{ fan_out_levels(
        'owner_periods',
        ['fiscal_month', 'attributed_on', 'period_type', 'period_start', 'quota_amount', 'booked_amount', 'won_count',
         'open_pipeline_amount', 'open_pipeline_count'],
        levels=['company', 'region', 'team', 'rep'],
        level_as='level',
        key_as='level_id',
        dimensions=dimensions
    ) }}
),

dated as (

    -- a member's team and region in a period: those of its latest fact there (a rep who moved mid-quarter
    -- is one row, named by the later team; the team and region levels have one value per member anyway)
    select
        *,
        {%- for column in dimensions %}
            first_value({{ column }}) over periods as period_{{ column }},
        {%- endfor %}
        1 as period_rows
    from levels
    where period_start <= {{ as_of() }}
    window periods as (
        partition by {{ grain | join(', ') }} order by attributed_on desc, fiscal_month desc, team_id asc
    )

),

aggregated as (

    select
        {%- for column in grain %}
            {{ column }},
        {%- endfor %}
        {%- for column in dimensions %}
            period_{{ column }} as {{ column }},
        {%- endfor %}
        cast(sum(quota_amount) as {{ numeric_type() }}) as quota_amount,
        cast(sum(booked_amount) as {{ numeric_type() }}) as booked_amount,
        cast(sum(won_count) as integer) as won_count,
        cast(sum(open_pipeline_amount) as {{ numeric_type() }}) as open_pipeline_amount,
        cast(sum(open_pipeline_count) as integer) as open_pipeline_count
    from dated
    group by
        {%- for column in grain %}
            {{ column }},
        {%- endfor %}
        {%- for column in dimensions %}
            period_{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}

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
    measured.level,
    measured.level_id,
    measured.owner_id,
    measured.team_id,
    measured.team_name,
    measured.region,
    -- the rep's team and region today (rep rows only)
    owners.team_id as current_team_id,
    case when owners.user_id is not null then coalesce(owners.team_name, {{ no_team_name() }}) end
        as current_team_name,
    case when owners.user_id is not null then coalesce(owners.region, {{ unassigned_region() }}) end
        as current_region,
    measured.period_type,
    measured.period_start,
    measured.period_end,
    {{ fiscal_quarter('measured.period_start') }} as fiscal_quarter,
    {{ fiscal_year('measured.period_start') }} as fiscal_year,
    measured.period_end < {{ as_of() }} as is_closed_period,
    measured.quota_amount,
    measured.booked_amount,
    measured.won_count,
    {{ ratio('measured.booked_amount', 'measured.quota_amount') }} as attainment,
    {{ ratio('measured.elapsed_days', 'measured.period_days') }} as elapsed_share,
    {{ ratio(
        ratio('measured.booked_amount', 'measured.quota_amount'),
        ratio('measured.elapsed_days', 'measured.period_days')
    ) }} as pace,
    cast(measured.quota_amount - measured.booked_amount as {{ numeric_type() }}) as gap_to_quota,
    measured.remaining_quota_amount,
    measured.open_pipeline_amount,
    measured.open_pipeline_count,
    {{ ratio('measured.open_pipeline_amount', 'measured.remaining_quota_amount') }} as pipeline_coverage
from measured
left join owners
    on
        measured.level = {{ hierarchy_level('rep') }}
        and measured.owner_id = owners.user_id
