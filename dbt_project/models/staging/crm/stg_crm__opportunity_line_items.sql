-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.opportunity_line_items (OpportunityLineItem.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as line_item_id
--   clean_string(opportunity_id)             as opportunity_id
--   clean_string(product2_id)                as product_id
--   to_number(quantity)                      as quantity
--   to_number(unit_price)                    as unit_price
--   to_number(total_price)                   as total_price
--   to_timestamp(created_date)               as created_at
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'opportunity_line_items') }})

select {{ stage_columns('crm', 'opportunity_line_items') }}
from source
