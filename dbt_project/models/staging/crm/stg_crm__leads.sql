-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.leads (Lead.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as lead_id
--   clean_string(owner_id)                   as owner_id
--   to_timestamp(created_date)               as created_at
--   clean_string(status)                     as lead_status
--   clean_string(lead_source)                as lead_source
--   to_boolean(is_converted)                 as is_converted
--   to_date(converted_date)                  as converted_date
--   clean_string(converted_opportunity_id)   as converted_opportunity_id
--   clean_string(converted_account_id)       as converted_account_id
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'leads') }})

select {{ stage_columns('crm', 'leads') }}
from source
