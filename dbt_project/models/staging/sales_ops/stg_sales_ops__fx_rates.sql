-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.fx_rates (fx_rates.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/sales_ops/_sales_ops__sources.yml says:
--   clean_code(currency_iso_code)  as currency_iso_code
--   to_number(rate, 10)            as rate
--   to_date(valid_from)            as valid_from
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('sales_ops', 'fx_rates') }})

select {{ stage_columns('sales_ops', 'fx_rates') }}
from source
