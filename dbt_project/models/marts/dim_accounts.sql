-- One row per account of Account.csv that is not deleted, with segment, industry, size band,
-- country and parent account.
with accounts as (

    select * from {{ ref('stg_crm__accounts') }}
    where not is_deleted

)

select
    accounts.account_id,
    accounts.account_name,
    accounts.account_type,
    accounts.industry,
    accounts.number_of_employees,
    {{ segment_for_employees('accounts.number_of_employees') }} as segment,
    case
        when accounts.number_of_employees is null then 'Unknown'
        when accounts.number_of_employees < 50 then '1-49'
        when accounts.number_of_employees < 200 then '50-199'
        when accounts.number_of_employees < 1000 then '200-999'
        when accounts.number_of_employees < 5000 then '1000-4999'
        else '5000+'
    end as size_band,
    accounts.annual_revenue,
    accounts.billing_country as country,
    accounts.owner_id,
    accounts.parent_account_id,
    parents.account_name as parent_account_name
from accounts
left join accounts as parents
    on accounts.parent_account_id = parents.account_id
