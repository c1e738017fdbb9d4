-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.products (Product2.csv): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- models/staging/crm/_crm__sources.yml says:
--   clean_string(id)                         as product_id
--   clean_string(name)                       as product_name
--   clean_string(product_code)               as product_code
--   clean_string(family)                     as product_family
--   to_boolean(is_active)                    as is_active
--   coalesce(to_boolean(is_deleted), false)  as is_deleted
--   _source_file
--   _row_number
--   then the export's custom *__c columns, as they are (macro custom_columns)
with source as (select * from {{ source('crm', 'products') }})

select {{ stage_columns('crm', 'products') }}
from source
