-- One row per owner and month: the quota rows of quotas.csv resolved to a user id (owner_id, or the
-- user whose email matches owner_email, case-insensitively) and summed. Rows that resolve to no
-- owner are left out (tests/warn_unresolved_quota_rows.sql lists them). A quota counts in the team the
-- owner was in on the quota month's first day (team_id, team_name, region: the team of the day,
-- int_users__assignment_history); current_team_id, current_team_name, current_region are the owner's today.
with quotas as (

    select * from {{ ref('stg_sales_ops__quotas') }}

),

users_by_email as (

    -- One user per email: the active one first, then the lowest id (two users should not share one).
    select
        user_id,
        email_key
    from (
        select
            user_id,
            lower(email) as email_key,
            row_number() over (
                partition by lower(email)
                order by case when is_active then 0 else 1 end, user_id
            ) as email_rank
        from {{ ref('stg_crm__users') }}
        where email is not null
    ) as ranked
    where email_rank = 1

),

resolved as (

    select
        coalesce(quotas.owner_id, users_by_email.user_id) as owner_id,
        {{ month_start('quotas.period_start') }} as quota_month,
        quotas.quota_amount
    from quotas
    left join users_by_email
        on
            quotas.owner_id is null
            and lower(quotas.owner_email) = users_by_email.email_key
    where quotas.period_start is not null

),

summed as (

    select
        owner_id,
        quota_month,
        coalesce(sum(quota_amount), 0) as quota_amount,
        count(*) as quota_rows
    from resolved
    where owner_id is not null
    group by owner_id, quota_month

),

owners as (

    select * from {{ ref('int_users__enriched') }}

),

assignments as (

    select * from {{ ref('int_users__assignment_history') }}

),

final as (

    select
        summed.owner_id,
        summed.quota_month,
        {{ attribution_columns() }},
        summed.quota_amount,
        summed.quota_rows
    from summed
    {{ join_owner_and_assignment('summed', 'summed.quota_month') }}

)

select * from final
