-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.opportunity_histories (OpportunityHistory.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as opportunity_history_id
--   clean_string(opportunity_id)             as opportunity_id
--   clean_string(stage_name)                 as stage_name
--   to_number(amount)                        as amount
--   to_number(probability)                   as probability_pct
--   to_date(close_date)                      as close_date
--   clean_string(forecast_category)          as forecast_category
--   to_timestamp(created_date)               as created_at
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   to_boolean(is_closed)                    as is_closed
--   to_boolean(is_won)                       as is_won
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'opportunity_histories') }})

select {{ stage_columns('crm', 'opportunity_histories') }}
from source
