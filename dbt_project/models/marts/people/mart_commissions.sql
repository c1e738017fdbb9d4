-- One row per owner and fiscal month of mart_rep_performance (owners with a quota or a closed deal,
-- from their first such month up to the month of as_of): the pay of the month under the owner's comp
-- plan (seed comp_plans). Leavers are paid nothing after their departure month (is_after_departure).
with tiers as (

    select * from {{ ref('int_people__commission_tiers') }}

),

plans as (

    select distinct
        plan_id,
        plan_name,
        compensation_model,
        base_salary_monthly,
        target_incentive_monthly,
        variable_cap_monthly
    from {{ ref('comp_plans') }}

),

rep_months as (

    select * from {{ ref('mart_rep_performance') }}

),

by_month as (

    select
        owner_id,
        fiscal_month,
        max(plan_id) as plan_id,
        max(case when is_after_departure then 1 else 0 end) = 1 as is_after_departure,
        cast(sum(commission_amount) as {{ numeric_type() }}) as commission_amount,
        cast(sum(bonus_amount) as {{ numeric_type() }}) as bonus_amount
    from tiers
    group by owner_id, fiscal_month

),

joined as (

    select
        {{ rep_attribute_columns('rep_months') }},
        rep_months.current_team_name,
        rep_months.current_region,
        rep_months.fiscal_month,
        rep_months.fiscal_quarter,
        rep_months.fiscal_year,
        by_month.plan_id,
        plans.plan_name,
        plans.compensation_model,
        rep_months.quota_amount,
        rep_months.won_amount as booked_amount,
        rep_months.attainment,
        plans.variable_cap_monthly,
        plans.target_incentive_monthly,
        coalesce(by_month.is_after_departure, false) as is_after_departure,
        case
            when coalesce(by_month.is_after_departure, false) then 0
            else coalesce(plans.base_salary_monthly, 0)
        end as base_salary_amount,
        coalesce(by_month.commission_amount, 0) as commission_amount,
        coalesce(by_month.bonus_amount, 0) as bonus_amount
    from rep_months
    left join by_month
        on
            rep_months.owner_id = by_month.owner_id
            and rep_months.fiscal_month = by_month.fiscal_month
    left join plans
        on by_month.plan_id = plans.plan_id

),

capped as (

    select
        *,
        commission_amount + bonus_amount as variable_uncapped_amount,
        case
            when variable_cap_monthly is not null and commission_amount + bonus_amount > variable_cap_monthly
                then variable_cap_monthly
            else commission_amount + bonus_amount
        end as variable_pay_amount
    from joined

)

select
    owner_id,
    owner_name,
    team_id,
    team_name,
    region,
    current_team_name,
    current_region,
    fiscal_month,
    fiscal_quarter,
    fiscal_year,
    plan_id,
    plan_name,
    compensation_model,
    is_after_departure,
    quota_amount,
    booked_amount,
    attainment,
    cast(base_salary_amount as {{ numeric_type() }}) as base_salary_amount,
    cast(commission_amount as {{ numeric_type() }}) as commission_amount,
    cast(bonus_amount as {{ numeric_type() }}) as bonus_amount,
    cast(variable_uncapped_amount as {{ numeric_type() }}) as variable_uncapped_amount,
    cast(variable_pay_amount as {{ numeric_type() }}) as variable_pay_amount,
    variable_uncapped_amount > variable_pay_amount as is_capped,
    cast(base_salary_amount + variable_pay_amount as {{ numeric_type() }}) as total_pay_amount,
    {{ ratio('variable_pay_amount', 'target_incentive_monthly') }} as variable_pay_to_target
from capped
