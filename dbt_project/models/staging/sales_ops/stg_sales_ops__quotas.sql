-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.quotas (quotas.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/sales_ops/_sales_ops__sources.yml says:
--   clean_string(owner_id)     as owner_id
--   clean_string(owner_email)  as owner_email
--   to_date(period_start)      as period_start
--   to_number(quota_amount)    as quota_amount
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('sales_ops', 'quotas') }})

select {{ stage_columns('sales_ops', 'quotas') }}
from source
