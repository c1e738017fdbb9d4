-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.user_assignments (user_assignments.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/sales_ops/_sales_ops__sources.yml says:
--   clean_string(user_id)       as user_id
--   to_date(valid_from)         as valid_from
--   to_date(valid_to)           as valid_to
--   clean_string(manager_id)    as manager_id
--   clean_string(user_role_id)  as user_role_id
--   clean_string(division)      as division
--   clean_string(department)    as department
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('sales_ops', 'user_assignments') }})

select {{ stage_columns('sales_ops', 'user_assignments') }}
from source
