-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.opportunities (Opportunity.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as opportunity_id
--   clean_string(account_id)                 as account_id
--   clean_string(owner_id)                   as owner_id
--   clean_string(name)                       as opportunity_name
--   clean_string(stage_name)                 as stage_name
--   to_number(amount)                        as amount
--   to_number(probability)                   as probability_pct
--   clean_string(forecast_category_name)     as forecast_category
--   to_date(close_date)                      as close_date
--   to_timestamp(created_date)               as created_at
--   to_boolean(is_closed)                    as is_closed
--   to_boolean(is_won)                       as is_won
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   clean_string(type)                       as opportunity_type
--   clean_string(lead_source)                as lead_source
--   clean_code(currency_iso_code)            as currency_iso_code
--   to_timestamp(last_modified_date)         as last_modified_at
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'opportunities') }})

select {{ stage_columns('crm', 'opportunities') }}
from source
