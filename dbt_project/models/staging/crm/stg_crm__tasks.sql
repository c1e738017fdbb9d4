-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.tasks (Task.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as task_id
--   clean_string(owner_id)                   as owner_id
--   clean_string(who_id)                     as who_id
--   clean_string(what_id)                    as what_id
--   to_date(activity_date)                   as activity_date
--   clean_string(task_subtype)               as task_subtype
--   clean_string(status)                     as task_status
--   to_timestamp(created_date)               as created_at
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   _run_id
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'tasks') }})

select {{ stage_columns('crm', 'tasks') }}
from source
