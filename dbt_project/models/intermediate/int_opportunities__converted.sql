-- A table, not a view: several models and tests read it, and as a view each would recompute it
-- (benchmarks/results.md).
{{ config(materialized='table') }}

-- One row per live opportunity (not deleted, created on or before as_of) with its amount in the
-- reporting currency, its status, its probability as a fraction, and the owner's and account's
-- attributes resolved. Team and region are the owner's on the deal's attribution date (a closed deal's
-- close date, else as_of: int_users__assignment_history), so a rep's move does not carry past deals to the
-- new team; current_team_id, current_team_name and current_region are the owner's assignment today.
with opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}
    where
        not is_deleted
        and (created_at is null or cast(created_at as date) <= {{ as_of() }})

),

owners as (

    select * from {{ ref('int_users__enriched') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

assignments as (

    select * from {{ ref('int_users__assignment_history') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__valid_periods') }}

),

stages as (

    select * from {{ ref('int_stages__resolved') }}

),

with_rate as (

    select
        opportunities.*,
        coalesce(opportunities.currency_iso_code, {{ reporting_currency() }}) as deal_currency,
        {{ fx_rate('opportunities.currency_iso_code', 'fx_rates.rate') }} as fx_rate,
        case
            when opportunities.is_closed and opportunities.close_date <= {{ as_of() }} then opportunities.close_date
            else {{ as_of() }}
        end as attributed_on
    from opportunities
    left join fx_rates
        on {{ fx_rate_in_force('fx_rates', 'opportunities.currency_iso_code', 'opportunities.close_date') }}

),

converted as (

    select
        with_rate.opportunity_id,
        with_rate.opportunity_name,
        with_rate.owner_id,
        owners.user_name as owner_name,
        owners.user_id is not null as is_owner_known,
        coalesce(owners.is_active, false) as is_owner_active,
        -- the assignment of the day; a day no assignment covers (a gap in user_assignments.csv): today's
        {{ attribution_columns() }},
        with_rate.attributed_on,
        with_rate.account_id,
        accounts.account_name,
        accounts.number_of_employees as account_employees,
        {{ segment_for_employees('accounts.number_of_employees') }} as segment,
        with_rate.opportunity_type,
        with_rate.lead_source,
        cast(with_rate.created_at as date) as created_date,
        with_rate.close_date,
        with_rate.stage_name,
        stages.stage_rank,
        with_rate.forecast_category,
        case
            when with_rate.is_closed and with_rate.is_won then 'won'
            when with_rate.is_closed then 'lost'
            else 'open'
        end as status,
        coalesce(with_rate.is_closed, false) as is_closed,
        coalesce(with_rate.is_closed and with_rate.is_won, false) as is_won,
        with_rate.amount as amount_local,
        with_rate.deal_currency as currency_iso_code,
        with_rate.fx_rate,
        with_rate.fx_rate is null as is_fx_missing,
        cast(with_rate.amount * with_rate.fx_rate as {{ numeric_type() }}) as amount,
        cast({{ probability_fraction('with_rate.probability_pct') }} as {{ numeric_type() }}) as probability,
        with_rate.probability_pct,
        with_rate.last_modified_at
    from with_rate
    {{ join_owner_and_assignment('with_rate', 'with_rate.attributed_on') }}
    left join accounts
        on with_rate.account_id = accounts.account_id
    left join stages
        on with_rate.stage_name = stages.stage_name

)

select * from converted
