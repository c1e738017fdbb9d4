{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['snapshot_date', 'opportunity_id']
    )
}}

-- One row per snapshot day and opportunity open at the end of that day, reconstructed from
-- OpportunityHistory: the state of a deal at the end of a day is its last history row written on or
-- before that day. First run: every day of the last var pipeline_snapshot_months months (13) ending
-- at as_of. Later runs append the days after the latest snapshot day up to as_of and never rewrite
-- past days.
{%- set window_start = pipeline_snapshot_window_start() %}
{%- if is_incremental() %}
    {%- set next_day = '(select ' ~ add_days('max(snapshot_date)', 1) ~ ' from ' ~ this ~ ')' %}
    {%- set first_day = 'coalesce(' ~ next_day ~ ', ' ~ window_start ~ ')' %}
{%- else %}
    {%- set first_day = window_start %}
{%- endif %}

with opportunities as (

    select * from {{ ref('int_opportunities__converted') }}

),

changes as (

    select * from {{ ref('int_opportunity_history__changes') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__valid_periods') }}

),

days as (

    select date_day as snapshot_date
    from {{ date_series(first_day, as_of(), 'day') }} as spine

),

end_of_day as (

    -- the last history row of each opportunity and day
    select
        *,
        row_number() over (
            partition by opportunity_id, change_date
            order by change_number desc
        ) as day_rank
    from changes

),

states as (

    select
        opportunity_id,
        change_date as valid_from,
        stage_name,
        stage_rank,
        is_closed_stage,
        forecast_category,
        close_date,
        amount_local,
        probability_pct,
        lead(change_date) over (partition by opportunity_id order by change_date) as valid_until
    from end_of_day
    where day_rank = 1

),

snapshots as (

    select
        days.snapshot_date,
        states.opportunity_id,
        opportunities.owner_id,
        opportunities.account_id,
        opportunities.segment,
        opportunities.opportunity_type,
        opportunities.lead_source,
        opportunities.created_date,
        states.stage_name,
        states.stage_rank,
        states.forecast_category,
        states.close_date,
        states.amount_local,
        opportunities.currency_iso_code,
        states.probability_pct,
        case
            when states.probability_pct < 0 then 0
            when states.probability_pct > 100 then 100
            else states.probability_pct
        end / 100 as probability
    from days
    inner join states
        on
            days.snapshot_date >= states.valid_from
            and (states.valid_until is null or days.snapshot_date < states.valid_until)
    inner join opportunities
        on states.opportunity_id = opportunities.opportunity_id
    where
        not states.is_closed_stage
        and (opportunities.created_date is null or opportunities.created_date <= days.snapshot_date)

),

converted as (

    select
        snapshots.snapshot_date,
        snapshots.opportunity_id,
        snapshots.owner_id,
        snapshots.account_id,
        snapshots.segment,
        snapshots.opportunity_type,
        snapshots.lead_source,
        snapshots.created_date,
        snapshots.stage_name,
        snapshots.stage_rank,
        snapshots.forecast_category,
        snapshots.close_date,
        snapshots.amount_local,
        snapshots.currency_iso_code,
        case
            when snapshots.currency_iso_code = {{ reporting_currency() }} then 1
            else fx_rates.rate
        end as fx_rate,
        cast(snapshots.probability as {{ numeric_type() }}) as probability
    from snapshots
    left join fx_rates
        on
            snapshots.currency_iso_code = fx_rates.currency_iso_code
            and snapshots.close_date >= fx_rates.valid_from
            and (fx_rates.valid_to is null or snapshots.close_date <= fx_rates.valid_to)

),

with_amount as (

    select
        *,
        cast(amount_local * fx_rate as {{ numeric_type() }}) as amount
    from converted

)

select
    snapshot_date,
    opportunity_id,
    owner_id,
    account_id,
    segment,
    opportunity_type,
    lead_source,
    created_date,
    stage_name,
    stage_rank,
    forecast_category,
    close_date,
    close_date < snapshot_date as is_overdue,
    amount_local,
    currency_iso_code,
    fx_rate,
    amount,
    probability,
    cast(amount * probability as {{ numeric_type() }}) as weighted_amount
from with_amount
