-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.contacts (Contact.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as contact_id
--   clean_string(account_id)                 as account_id
--   clean_string(owner_id)                   as owner_id
--   clean_string(first_name)                 as first_name
--   clean_string(last_name)                  as last_name
--   clean_string(email)                      as email
--   clean_string(title)                      as title
--   to_timestamp(created_date)               as created_at
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'contacts') }})

select {{ stage_columns('crm', 'contacts') }}
from source
