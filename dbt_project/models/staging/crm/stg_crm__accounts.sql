-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.accounts (Account.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as account_id
--   clean_string(name)                       as account_name
--   clean_string(industry)                   as industry
--   to_integer(number_of_employees)          as number_of_employees
--   to_number(annual_revenue)                as annual_revenue
--   clean_string(billing_country)            as billing_country
--   clean_string(parent_id)                  as parent_account_id
--   clean_string(owner_id)                   as owner_id
--   clean_string(type)                       as account_type
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'accounts') }})

select {{ stage_columns('crm', 'accounts') }}
from source
