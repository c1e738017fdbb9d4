-- One row per owner and month, from the owner's first quota month or first closed deal (whichever
-- comes first) up to the month of as_of, for every owner with a quota or a closed deal; for a rep who
-- left (User.IsActive false) only up to their last quota month or last closed deal (whichever comes
-- last), so no zero months are densified after a departure. Deals count in the month of their close
-- date, and only when they closed on or before as_of. A rep-month's date is its first day: team_id,
-- team_name and region are the rep's team of the day then (as a quota month's, int_quotas__resolved),
-- current_team_id, current_team_name and current_region the rep's today.
{%- set owner_month = ['owner_id', 'fiscal_month'] %}
with closed_deals as (

    select
        owner_id,
        close_fiscal_month as fiscal_month,
        status,
        amount
    from {{ ref('fct_opportunities') }}
    where
        is_closed
        and close_date <= {{ as_of() }}

),

quotas as (

    select
        owner_id,
        quota_month as fiscal_month,
        quota_amount
    from {{ ref('int_quotas__resolved') }}
    where quota_month <= {{ month_start(as_of()) }}

),

deals_by_month as (

    select
        owner_id,
        fiscal_month,
        count(case when status = 'won' then 1 end) as won_count,
        count(case when status = 'lost' then 1 end) as lost_count,
        coalesce(sum(case when status = 'won' then amount end), 0) as won_amount,
        coalesce(sum(case when status = 'lost' then amount end), 0) as lost_amount
    from closed_deals
    group by owner_id, fiscal_month

),

owner_first_month as (

    select
        owner_id,
        min(fiscal_month) as first_month,
        max(fiscal_month) as last_month
    from (
        select
            owner_id,
            fiscal_month
        from deals_by_month
        union all
        select
            owner_id,
            fiscal_month
        from quotas
    ) as activity
    group by owner_id

),

months as (

    select date_month as fiscal_month
    from {{ date_series('(select min(first_month) from owner_first_month)', month_start(as_of()), 'month') }} as spine

),

owners as (

    select * from {{ ref('int_users__enriched') }}

),

assignments as (

    select * from {{ ref('int_users__assignment_history') }}

),

owner_months as (

    select
        owner_first_month.owner_id,
        months.fiscal_month
    from owner_first_month
    left join owners
        on owner_first_month.owner_id = owners.user_id
    inner join months
        on
            owner_first_month.first_month <= months.fiscal_month
            and (
                owners.is_active is null
                or owners.is_active
                or owner_first_month.last_month >= months.fiscal_month
            )

),

joined as (

    select
        owner_months.owner_id,
        owners.user_name as owner_name,
        {{ attribution_columns() }},
        owner_months.fiscal_month,
        {{ fiscal_quarter('owner_months.fiscal_month') }} as fiscal_quarter,
        {{ fiscal_year('owner_months.fiscal_month') }} as fiscal_year,
        coalesce(deals_by_month.won_count, 0) as won_count,
        coalesce(deals_by_month.lost_count, 0) as lost_count,
        cast(coalesce(deals_by_month.won_amount, 0) as {{ numeric_type() }}) as won_amount,
        cast(coalesce(deals_by_month.lost_amount, 0) as {{ numeric_type() }}) as lost_amount,
        cast(coalesce(quotas.quota_amount, 0) as {{ numeric_type() }}) as quota_amount
    from owner_months
    left join deals_by_month
        on {{ equal_keys('owner_months', 'deals_by_month', owner_month) }}
    left join quotas
        on {{ equal_keys('owner_months', 'quotas', owner_month) }}
    {{ join_owner_and_assignment('owner_months', 'owner_months.fiscal_month') }}

)

select
    {{ rep_attribute_columns(current=true) }},
    fiscal_month,
    fiscal_quarter,
    fiscal_year,
    won_count,
    lost_count,
    won_amount,
    lost_amount,
    {{ win_rates() }},
    quota_amount,
    {{ ratio('won_amount', 'quota_amount') }} as attainment
from joined
