-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.user_roles (UserRole.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)              as user_role_id
--   clean_string(name)            as user_role_name
--   clean_string(parent_role_id)  as parent_role_id
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'user_roles') }})

select {{ stage_columns('crm', 'user_roles') }}
from source
