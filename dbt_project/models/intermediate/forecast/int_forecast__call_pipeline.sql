-- One row per call date, series (levels company, region, team, rep of var hierarchy) and target month:
-- the reps' own call as it stood when the month started, from the pipeline snapshot at the end of the
-- day before the call date (fct_pipeline_snapshots at snapshot_date = call_date - 1). Target months: the
-- call date's month (horizon 1) and the next month (horizon 2). Open amounts by forecast category of deals
-- closing in the target month, owner as in fct_opportunities; an open deal counts in the team its owner was
-- in on the snapshot date (the team of the day, as fct_bookings_monthly credits a won deal on its close date).
with {{ import_ctes(snapshots='fct_pipeline_snapshots', opportunities='fct_opportunities',
                    owners='int_users__enriched', assignments='int_users__assignment_history') }},

call_dates as (

    -- month starts whose previous day has a snapshot
    select distinct
        {{ add_days('snapshot_date', 1) }} as call_date,
        snapshot_date
    from snapshots
    where {{ month_start(add_days('snapshot_date', 1)) }} = {{ add_days('snapshot_date', 1) }}

),

horizons as (

    select 1 as horizon
    union all
    select 2 as horizon

),

open_deals as (

    select
        call_dates.call_date,
        horizons.horizon,
        {{ add_months('call_dates.call_date', 'horizons.horizon - 1') }} as target_month,
        {{ attribution_columns(current=false) }},
        opportunities.owner_id,
        snapshots.forecast_category,
        snapshots.close_date,
        coalesce(snapshots.amount, 0) as amount
    from call_dates
    cross join horizons
    inner join snapshots
        on call_dates.snapshot_date = snapshots.snapshot_date
    inner join opportunities
        on snapshots.opportunity_id = opportunities.opportunity_id
    {{ join_owner_and_assignment('opportunities', 'call_dates.snapshot_date') }}
    where snapshots.forecast_category in ('Commit', 'Best Case')

),

in_target as (

    select
        *,
        case when forecast_category = 'Commit' then amount else 0 end as commit_amount,
        case when forecast_category = 'Best Case' then amount else 0 end as best_case_amount
    from open_deals
    where {{ month_start('close_date') }} = target_month

),

by_level as (
    {{ fan_out_levels(
        'in_target',
        ['call_date', 'horizon', 'target_month', 'commit_amount', 'best_case_amount'],
        levels=['company', 'region', 'team', 'rep']
    ) }}
)

select
    series_level,
    series_key,
    call_date,
    horizon,
    target_month,
    cast(sum(commit_amount) as {{ numeric_type() }}) as open_commit,
    cast(sum(best_case_amount) as {{ numeric_type() }}) as open_best_case
from by_level
group by series_level, series_key, call_date, horizon, target_month
