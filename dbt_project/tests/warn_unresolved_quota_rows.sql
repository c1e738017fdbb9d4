-- Quota rows that resolve to no user (no owner_id, and no user has the owner_email): their quota is
-- left out of mart_rep_performance. A warning, not an error: the run goes on.
{{ config(severity='warn') }}

with users as (

    select lower(email) as email_key
    from {{ ref('stg_crm__users') }}
    where email is not null

)

select
    quotas._source_file,
    quotas._row_number,
    quotas.owner_email,
    quotas.period_start,
    quotas.quota_amount
from {{ ref('stg_sales_ops__quotas') }} as quotas
where
    quotas.owner_id is null
    and not exists (
        select 1 as found from users
        where users.email_key = lower(quotas.owner_email)
    )
