{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key=['snapshot_date', 'opportunity_id'],
        pre_hook=["{{ stage_rules_hook('create') }}", "{{ stage_rules_hook('reset') }}"],
        post_hook=[
            "{% if can_delete_rows() %}delete from {{ this }} as kept where not exists (
                select 1
                from {{ ref('int_opportunity_history__daily_states') }} as states
                inner join {{ ref('int_opportunities__converted') }} as opportunities
                    on states.opportunity_id = opportunities.opportunity_id
                where
                    states.snapshot_date = kept.snapshot_date
                    and states.opportunity_id = kept.opportunity_id
                    and (opportunities.created_date is null or opportunities.created_date <= states.snapshot_date)
            ){% endif %}",
            "{{ stage_rules_hook('clear') }}",
            "{{ stage_rules_hook('record') }}"
        ]
    )
}}

-- depends_on: {{ ref('int_stages__resolved') }}
-- One row per snapshot day and opportunity open at the end of that day: the deal's state that day
-- (int_opportunity_history__daily_states, reconstructed from OpportunityHistory, incremental: past
-- days are never recomputed) with the deal's current attributes (owner, account, segment, currency
-- and rate), as a full rebuild would show them. Live opportunities created on or before the day only.
-- Incremental: a run computes the new days, and every day of the deals whose attributes changed and
-- of the (currency, close date) pairs whose rate changed, comparing them with what the table holds;
-- the post-hook drops the rows a full build would not have (days that left the window, deals no
-- longer live or created later than the day). When the stage rules (int_stages__resolved) changed since
-- the table was built, the pre-hook empties it and the night rebuilds it whole (stage_rules_hook).
with opportunities as (

    select * from {{ ref('int_opportunities__converted') }}

),

states as (

    select * from {{ ref('int_opportunity_history__daily_states') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__valid_periods') }}

),
{%- if is_incremental() %}
    {#- the deal's attributes a row takes from int_opportunities__converted (see `snapshots`) #}
    {%- set attributes = ['opportunity_id', 'owner_id', 'account_id', 'segment', 'opportunity_type',
                          'lead_source', 'created_date', 'currency_iso_code'] %}

    built_until as (

        select coalesce(max(snapshot_date), cast('0001-01-01' as date)) as last_day from {{ this }}

    ),

    built_attributes as (

        -- each deal's attributes as the table holds them (the same on every row of the deal)
        select distinct {{ attributes | join(', ') }}
        from {{ this }}

    ),

    changed_opportunities as (

        -- deals whose current attributes are not what the table holds, new deals included
        select opportunity_id from (
            select {{ attributes | join(', ') }}
            from opportunities
            except
            select * from built_attributes
        ) as changed

    ),

    built_rates as (

        select distinct
            currency_iso_code,
            close_date,
            fx_rate
        from {{ this }}

    ),

    current_rates as (

        -- the rate each built (currency, close date) pair takes today, as `converted` below computes it
        select
            built_pairs.currency_iso_code,
            built_pairs.close_date,
            {{ fx_rate('built_pairs.currency_iso_code', 'fx_rates.rate') }} as fx_rate
        from (select distinct
            currency_iso_code,
            close_date
        from built_rates) as built_pairs
        left join fx_rates
            on {{ fx_rate_in_force('fx_rates', 'built_pairs.currency_iso_code', 'built_pairs.close_date') }}

    ),

    changed_rates as (

        select distinct
            currency_iso_code,
            close_date
        from (
            select * from built_rates
            except
            select * from current_rates
        ) as changed

    ),
{%- endif %}

snapshots as (

    select
        states.snapshot_date,
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
        {{ probability_fraction('states.probability_pct') }} as probability
    from states
    inner join opportunities
        on states.opportunity_id = opportunities.opportunity_id
    where
        (opportunities.created_date is null or opportunities.created_date <= states.snapshot_date)
        {%- if is_incremental() %}
            and (
                states.snapshot_date > (select built_until.last_day from built_until)
                or states.opportunity_id in (select changed.opportunity_id from changed_opportunities as changed)
                or exists (
                    select 1 as found from changed_rates
                    where
                        changed_rates.currency_iso_code = opportunities.currency_iso_code
                        and changed_rates.close_date = states.close_date
                )
            )
        {%- endif %}

),

close_date_rates as (

    -- the rate of each currency and close date the snapshots hold: the range join runs on these few
    -- pairs, not on every snapshot row (pairs without a rate are absent, as the left join below leaves them)
    select
        pairs.currency_iso_code,
        pairs.close_date,
        fx_rates.rate
    from (
        select distinct
            currency_iso_code,
            close_date
        from snapshots
        where currency_iso_code is not null and close_date is not null
    ) as pairs
    inner join fx_rates
        on {{ fx_rate_in_force('fx_rates', 'pairs.currency_iso_code', 'pairs.close_date') }}

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
        {{ fx_rate('snapshots.currency_iso_code', 'close_date_rates.rate') }} as fx_rate,
        cast(snapshots.probability as {{ numeric_type() }}) as probability
    from snapshots
    left join close_date_rates
        on
            snapshots.currency_iso_code = close_date_rates.currency_iso_code
            and snapshots.close_date = close_date_rates.close_date

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
