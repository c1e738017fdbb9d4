-- One row per live opportunity: not deleted, created on or before as_of. Amounts in the reporting
-- currency; owner as at export time, team and region the owner's on the attribution date (a closed deal's
-- close date, else as_of; current_team_id, current_team_name, current_region: the owner's today), segment
-- the account's. History columns (first_stage_date
-- ... stage_skip_count) come from OpportunityHistory via int_opportunity_history__summary.
with {{ import_ctes(converted='int_opportunities__converted', history='int_opportunity_history__summary') }},

opportunities as (

    select
        converted.*,
        history.first_stage_date,
        history.last_stage_change_date,
        coalesce(history.close_date_push_count, 0) as close_date_push_count,
        coalesce(history.amount_change_count, 0) as amount_change_count,
        coalesce(history.reopen_count, 0) > 0 as is_reopened,
        coalesce(history.stage_skip_count, 0) as stage_skip_count
    from converted
    left join history
        on converted.opportunity_id = history.opportunity_id

)

select
    opportunity_id,
    opportunity_name,
    owner_id,
    owner_name,
    is_owner_known,
    is_owner_active,
    team_id,
    team_name,
    region,
    attributed_on,
    current_team_id,
    current_team_name,
    current_region,
    account_id,
    account_name,
    segment,
    opportunity_type,
    lead_source,
    created_date,
    close_date,
    {{ month_start('close_date') }} as close_fiscal_month,
    {{ fiscal_quarter('close_date') }} as close_fiscal_quarter,
    {{ fiscal_year('close_date') }} as close_fiscal_year,
    stage_name,
    stage_rank,
    forecast_category,
    status,
    is_closed,
    is_won,
    status = 'open' and close_date < {{ as_of() }} as is_overdue,
    amount,
    amount_local,
    currency_iso_code,
    fx_rate,
    is_fx_missing,
    probability,
    cast(amount * probability as {{ numeric_type() }}) as weighted_amount,
    case
        when is_closed then {{ days_between('created_date', 'close_date') }}
    end as sales_cycle_days,
    last_modified_at,
    first_stage_date,
    last_stage_change_date,
    close_date_push_count,
    amount_change_count,
    is_reopened,
    stage_skip_count
from opportunities
