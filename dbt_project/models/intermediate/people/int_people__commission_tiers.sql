-- One row per owner, fiscal month and tier of the owner's comp plan (seed comp_plans), for every
-- owner-month of mart_rep_performance: the commission and bonus each tier pays, before the cap.
-- Bookings = won_amount of the month (deals won in the month, closed on or before as_of).
with rep_months as (

    select
        owner_id,
        fiscal_month,
        won_amount as booked_amount,
        quota_amount
    from {{ ref('mart_rep_performance') }}

),

owners as (

    select * from {{ ref('int_users__enriched') }}

),

plans as (

    select * from {{ ref('comp_plans') }}

),

plan_headers as (

    select distinct
        plan_id,
        role_pattern,
        priority
    from plans

),

owner_plans as (

    -- The matching plan with the lowest priority (then the lowest plan_id) per owner.
    select
        owner_id,
        plan_id
    from (
        select
            owners.user_id as owner_id,
            plan_headers.plan_id,
            row_number() over (
                partition by owners.user_id
                order by plan_headers.priority, plan_headers.plan_id
            ) as plan_rank
        from owners
        inner join plan_headers
            on coalesce(owners.user_role_name, '') like plan_headers.role_pattern
    ) as ranked
    where plan_rank = 1

),

last_quota_months as (

    select
        owner_id,
        max(quota_month) as last_quota_month
    from {{ ref('int_quotas__resolved') }}
    group by owner_id

),

last_deal_months as (

    select
        owner_id,
        max(fiscal_month) as last_deal_month
    from {{ ref('mart_rep_performance') }}
    where won_count + lost_count > 0
    group by owner_id

),

rep_months_enriched as (

    select
        rep_months.owner_id,
        rep_months.fiscal_month,
        rep_months.booked_amount,
        rep_months.quota_amount,
        owner_plans.plan_id,
        coalesce(owners.is_active, false) as is_owner_active,
        -- A leaver (IsActive false, or not in User.csv) is employed up to the last month with a quota
        -- row, or with a closed deal when they never had a quota.
        not coalesce(owners.is_active, false)
        and rep_months.fiscal_month
        > coalesce(last_quota_months.last_quota_month, last_deal_months.last_deal_month) as is_after_departure
    from rep_months
    left join owners
        on rep_months.owner_id = owners.user_id
    left join owner_plans
        on rep_months.owner_id = owner_plans.owner_id
    left join last_quota_months
        on rep_months.owner_id = last_quota_months.owner_id
    left join last_deal_months
        on rep_months.owner_id = last_deal_months.owner_id

),

tiers as (

    select
        rep_months_enriched.owner_id,
        rep_months_enriched.fiscal_month,
        rep_months_enriched.plan_id,
        plans.tier,
        rep_months_enriched.is_owner_active,
        rep_months_enriched.booked_amount,
        rep_months_enriched.quota_amount,
        plans.attainment_from,
        plans.attainment_to,
        plans.commission_rate,
        plans.bonus_amount,
        coalesce(rep_months_enriched.is_after_departure, false) as is_after_departure,
        case
            when rep_months_enriched.quota_amount > 0
                then
                    rep_months_enriched.booked_amount
                    - plans.attainment_from * rep_months_enriched.quota_amount
            -- Zero quota: only an unbounded tier from 0 (flat commission) applies, on all bookings.
            when plans.attainment_from = 0 and plans.attainment_to is null
                then rep_months_enriched.booked_amount
            else 0
        end as above_tier_start,
        case
            when plans.attainment_to is null then null
            when rep_months_enriched.quota_amount > 0
                then (plans.attainment_to - plans.attainment_from) * rep_months_enriched.quota_amount
            else 0
        end as tier_width
    from rep_months_enriched
    inner join plans
        on rep_months_enriched.plan_id = plans.plan_id

)

select
    owner_id,
    fiscal_month,
    plan_id,
    tier,
    is_owner_active,
    is_after_departure,
    booked_amount,
    quota_amount,
    attainment_from,
    attainment_to,
    commission_rate,
    bonus_amount as tier_bonus_amount,
    cast(
        case
            when is_after_departure or above_tier_start <= 0 then 0
            when tier_width is not null and above_tier_start > tier_width then tier_width
            else above_tier_start
        end as {{ numeric_type() }}
    ) as tier_booked_amount,
    cast(
        case
            when is_after_departure or above_tier_start <= 0 then 0
            when tier_width is not null and above_tier_start > tier_width then tier_width
            else above_tier_start
        end * commission_rate as {{ numeric_type() }}
    ) as commission_amount,
    cast(
        case
            when
                not is_after_departure
                and quota_amount > 0
                and booked_amount >= attainment_from * quota_amount
                then bonus_amount
            else 0
        end as {{ numeric_type() }}
    ) as bonus_amount
from tiers
