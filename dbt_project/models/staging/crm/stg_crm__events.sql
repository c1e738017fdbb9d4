-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.events (Event.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as event_id
--   clean_string(owner_id)                   as owner_id
--   clean_string(who_id)                     as who_id
--   clean_string(what_id)                    as what_id
--   to_timestamp(start_date_time)            as start_at
--   to_timestamp(end_date_time)              as end_at
--   to_integer(duration_in_minutes)          as duration_minutes
--   clean_string(type)                       as event_type
--   clean_string(subject)                    as subject
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   _run_id
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'events') }})

select {{ stage_columns('crm', 'events') }}
from source
