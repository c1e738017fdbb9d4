-- One row per owner and month: the quota rows of quotas.csv resolved to a user id (owner_id, or the
-- user whose email matches owner_email, case-insensitively) and summed. Rows that resolve to no
-- owner are left out (tests/warn_unresolved_quota_rows.sql lists them).
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

)

select
    owner_id,
    quota_month,
    coalesce(sum(quota_amount), 0) as quota_amount,
    count(*) as quota_rows
from resolved
where owner_id is not null
group by owner_id, quota_month
