-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.users (User.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)            as user_id
--   clean_string(name)          as user_name
--   clean_string(email)         as email
--   clean_string(manager_id)    as manager_id
--   clean_string(user_role_id)  as user_role_id
--   clean_string(division)      as division
--   clean_string(department)    as department
--   to_boolean(is_active)       as is_active
--   to_timestamp(created_date)  as created_at
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'users') }})

select {{ stage_columns('crm', 'users') }}
from source
