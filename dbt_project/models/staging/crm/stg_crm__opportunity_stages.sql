-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.opportunity_stages (OpportunityStage.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                      as opportunity_stage_id
--   clean_string(master_label)            as stage_label
--   clean_string(api_name)                as stage_api_name
--   to_boolean(is_closed)                 as is_closed
--   to_boolean(is_won)                    as is_won
--   to_number(default_probability)        as default_probability_pct
--   to_integer(sort_order)                as sort_order
--   to_boolean(is_active)                 as is_active
--   clean_string(forecast_category_name)  as forecast_category
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'opportunity_stages') }})

select {{ stage_columns('crm', 'opportunity_stages') }}
from source
